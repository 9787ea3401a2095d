//! The warp rig: how the face moves, measured once per portrait and stored as displacement fields on a coarse
//! grid.
//!
//! The mouth opens by tearing along the inner lips, not by stretching skin: the face is split into layers that
//! move apart. The *upper face* (upper lip, cheeks, eyes) and the *lower face* (lower lip, chin, jaw line, carried
//! by the jaw) are separated by the inner-lip contour; behind them is the mouth interior, where the portrait's own
//! teeth are used when it shows any (the upper ones fixed to the skull, the lower ones carried by the jaw) and a
//! photographed interior ([`super::interior`]) where it does not. Each layer has one field per basis (jaw, width,
//! rounding, closure, blinks, brows) at parameter value 1; a frame sums them with its coefficients. Every field
//! tapers to zero at the border of the region of interest, so pixels outside it never change.

use image::RgbImage;

use super::{
    landmarks as lm,
    sample::{bilinear_rgb, luma},
};

/// Bases: jaw open, width, rounding, closure, right blink, left blink, brow raise.
pub const N_BASIS: usize = 7;
pub const B_JAW: usize = 0;
pub const B_WIDTH: usize = 1;
pub const B_ROUND: usize = 2;
pub const B_CLOSURE: usize = 3;
pub const B_BLINK_R: usize = 4;
pub const B_BLINK_L: usize = 5;
pub const B_BROW: usize = 6;

/// Layers with fields of their own: the upper face, the lower face, the lower teeth (rigid with the jaw bone).
/// The upper teeth move with the head only.
pub const N_LAYERS: usize = 3;
pub const L_UPPER: usize = 0;
pub const L_LOWER: usize = 1;
pub const L_TEETH: usize = 2;

/// Samples of each lip contour across the mouth.
pub const CONTOUR_SAMPLES: usize = 41;

/// Lower-lip drop at `jaw_open = 1`, in face heights (forehead to chin): a wide-open "ah".
pub const JAW_DROP: f32 = 0.15;

/// Face silhouette (36 points).
const FACE_OVAL: [usize; 36] = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
    148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
];

/// Grid spacing in pixels.
pub const CELL: usize = 8;

/// The mouth in its own coordinates: `u` along the mouth (towards the subject's left), `v` down the face, both
/// in pixels from the midpoint of the inner lip corners, at rest. The renderer tests which layer a source point
/// belongs to against these contours.
#[derive(Debug, Clone)]
pub struct MouthFrame {
    /// Origin: midpoint of the inner lip corners (78, 308), pixels.
    pub origin: [f32; 2],
    /// Unit vectors of the face: `right` (towards the subject's left) and `down`.
    pub right: [f32; 2],
    pub down: [f32; 2],
    /// Half the distance between the inner lip corners, pixels.
    pub half_width: f32,
    /// `v` of the upper and lower inner lip and of the seam between them (their midline), sampled at
    /// `CONTOUR_SAMPLES` values of `u` evenly from `-half_width` to `half_width`.
    pub upper: Vec<f32>,
    pub lower: Vec<f32>,
    pub seam: Vec<f32>,
    /// Thickness of the upper and lower lip at the middle, pixels.
    pub upper_lip: f32,
    pub lower_lip: f32,
}

impl MouthFrame {
    /// Mouth coordinates of image point `q`.
    pub fn local(&self, q: [f32; 2]) -> [f32; 2] {
        let d = [q[0] - self.origin[0], q[1] - self.origin[1]];
        [
            d[0] * self.right[0] + d[1] * self.right[1],
            d[0] * self.down[0] + d[1] * self.down[1],
        ]
    }

    /// Image point of mouth coordinates (`u`, `v`).
    pub fn point(&self, u: f32, v: f32) -> [f32; 2] {
        [
            self.origin[0] + u * self.right[0] + v * self.down[0],
            self.origin[1] + u * self.right[1] + v * self.down[1],
        ]
    }

    /// Value of a contour at `u`; beyond the corners, the corner's value (the seam runs on sideways).
    pub fn at(&self, contour: &[f32], u: f32) -> f32 {
        let n = contour.len();
        let t = ((u / self.half_width + 1.0) / 2.0 * (n - 1) as f32).clamp(0.0, (n - 1) as f32);
        let i = (t as usize).min(n - 2);
        let f = t - i as f32;
        contour[i] + (contour[i + 1] - contour[i]) * f
    }

    /// Opening profile across the mouth: 1 in the middle, 0 a little inside the inner corners (the mesh puts
    /// them at the end of the lip crease, beyond where the lips part), lens-shaped in between.
    pub fn profile(&self, u: f32) -> f32 {
        (1.0 - (u / (0.88 * self.half_width)).powi(2))
            .max(0.0)
            .powf(0.7)
    }

    /// How far the inner corners sit above the middle of the seam at rest, pixels (positive on a smile, about
    /// zero on a neutral mouth, negative on a downturned one).
    pub fn corner_lift(&self) -> f32 {
        let n = self.seam.len();
        self.seam[n / 2] - 0.5 * (self.seam[0] + self.seam[n - 1])
    }

    /// Gap between the inner lips at rest at `u`, pixels.
    pub fn rest_gap(&self, u: f32) -> f32 {
        (self.at(&self.lower, u) - self.at(&self.upper, u)).max(0.0)
    }
}

/// Colours and grain of the portrait around the mouth, so the interior is lit and textured like the photo.
#[derive(Debug, Clone, Copy)]
pub struct MouthLook {
    /// Mean colour of the skin around the mouth and of the lips (RGB, 0..=255).
    pub skin: [f32; 3],
    pub lips: [f32; 3],
    /// Brightness of the skin around the mouth relative to a mid-grey (shading of the interior).
    pub light: f32,
    /// Standard deviation of the photo's fine grain on the skin (luma, 0..=255).
    pub grain: f32,
}

#[derive(Debug, Clone)]
pub struct WarpRig {
    /// Region rewritten every frame: x0, y0, x1, y1 (exclusive), pixels.
    pub roi: [usize; 4],
    /// Grid nodes across and down; node (i, j) sits at (roi.x0 + i*CELL, roi.y0 + j*CELL).
    pub gw: usize,
    pub gh: usize,
    /// Per node, per layer, per basis: forward displacement (dx, dy) at parameter 1. Index
    /// `(node * N_LAYERS + layer) * N_BASIS + k`.
    pub basis: Vec<[f32; 2]>,
    /// Per node: weight of the rigid head motion (1 on the face, 0 at the region's border).
    pub head_weight: Vec<f32>,
    /// Head rotation pivot (below the chin).
    pub pivot: [f32; 2],
    pub mouth: MouthFrame,
    pub look: MouthLook,
    /// Face height (forehead to chin) and mouth width (outer corners), pixels.
    pub face_height: f32,
    pub mouth_width: f32,
    /// Distance between the eye centres, pixels.
    pub interocular: f32,
    /// Indexed [`L_UPPER`], [`L_LOWER`], then per contour sample of that inner lip ([`MouthFrame::upper`],
    /// [`MouthFrame::lower`]), per
    /// basis: the lip's displacement at parameter 1 in mouth axes (along, down). The renderer moves the lips'
    /// edges with these exactly, not through the coarse grid, which would blur a few-pixel lip.
    pub lip_basis: [Vec<[[f32; 2]; N_BASIS]>; 2],
}

fn sub(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [a[0] - b[0], a[1] - b[1]]
}
fn len(a: [f32; 2]) -> f32 {
    (a[0] * a[0] + a[1] * a[1]).sqrt()
}
fn smooth(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}
fn mean(points: &[[f32; 3]], ids: &[usize]) -> [f32; 2] {
    let s = ids.iter().fold([0.0, 0.0], |a, &i| {
        [a[0] + points[i][0], a[1] + points[i][1]]
    });
    [s[0] / ids.len() as f32, s[1] / ids.len() as f32]
}

/// A polyline of mouth coordinates, evaluated at `u` (linear; clamped to its ends).
pub(crate) fn polyline_at(chain: &[[f32; 2]], u: f32) -> f32 {
    let first = chain[0];
    let last = chain[chain.len() - 1];
    if u <= first[0].min(last[0]) {
        return if first[0] <= last[0] {
            first[1]
        } else {
            last[1]
        };
    }
    if u >= first[0].max(last[0]) {
        return if first[0] >= last[0] {
            first[1]
        } else {
            last[1]
        };
    }
    chain
        .windows(2)
        .find_map(|s| {
            let (a, b) = (s[0], s[1]);
            let (lo, hi) = (a[0].min(b[0]), a[0].max(b[0]));
            (u >= lo && u <= hi && hi > lo)
                .then(|| a[1] + (b[1] - a[1]) * (u - a[0]) / (b[0] - a[0]))
        })
        .unwrap_or(first[1])
}

/// Signed distance of `q` to a closed polygon, positive inside.
fn signed_distance(poly: &[[f32; 2]], q: [f32; 2]) -> f32 {
    let mut inside = false;
    let mut dmin = f32::MAX;
    for k in 0..poly.len() {
        let (a, b) = (poly[k], poly[(k + 1) % poly.len()]);
        if (a[1] > q[1]) != (b[1] > q[1])
            && q[0] < a[0] + (q[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        {
            inside = !inside;
        }
        let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
        let l2 = (ex * ex + ey * ey).max(1e-6);
        let t = (((q[0] - a[0]) * ex + (q[1] - a[1]) * ey) / l2).clamp(0.0, 1.0);
        let (dx, dy) = (a[0] + t * ex - q[0], a[1] + t * ey - q[1]);
        dmin = dmin.min(dx * dx + dy * dy);
    }
    if inside { dmin.sqrt() } else { -dmin.sqrt() }
}

impl MouthFrame {
    fn build(points: &[[f32; 3]], down: [f32; 2], right: [f32; 2]) -> Self {
        let p = |i: usize| [points[i][0], points[i][1]];
        let origin = [(p(78)[0] + p(308)[0]) / 2.0, (p(78)[1] + p(308)[1]) / 2.0];
        let mut frame = MouthFrame {
            origin,
            right,
            down,
            half_width: 1.0,
            upper: Vec::new(),
            lower: Vec::new(),
            seam: Vec::new(),
            upper_lip: 1.0,
            lower_lip: 1.0,
        };
        let chain = |frame: &MouthFrame, ids: &[usize]| -> Vec<[f32; 2]> {
            ids.iter().map(|&i| frame.local(p(i))).collect()
        };
        let upper = chain(&frame, &lm::INNER_UPPER);
        let lower: Vec<[f32; 2]> = std::iter::once(78)
            .chain(lm::INNER_LOWER)
            .chain([308])
            .map(|i| frame.local(p(i)))
            .collect();
        let half = ((frame.local(p(308))[0] - frame.local(p(78))[0]).abs() / 2.0).max(1.0);
        frame.half_width = half;
        let n = CONTOUR_SAMPLES;
        for s in 0..n {
            let u = -half + 2.0 * half * s as f32 / (n - 1) as f32;
            let (t, l) = (polyline_at(&upper, u), polyline_at(&lower, u));
            // The mesh may put the inner lips a hair across each other on a closed mouth: no negative gap.
            let l = l.max(t);
            frame.upper.push(t);
            frame.lower.push(l);
            frame.seam.push((t + l) / 2.0);
        }
        let outer_top = frame.local(p(0))[1];
        let outer_bottom = frame.local(p(17))[1];
        let mid = frame.at(&frame.seam.clone(), 0.0);
        frame.upper_lip = (frame.at(&frame.upper.clone(), 0.0) - outer_top).max(0.15 * half);
        frame.lower_lip = (outer_bottom - frame.at(&frame.lower.clone(), 0.0)).max(0.2 * half);
        let _ = mid;
        frame
    }
}

impl MouthFrame {
    /// Where the portrait shows teeth, the mesh's inner lips often stop short of the lips' real edges (a sliver
    /// of teeth is left above or below them); walks each contour out from the seam while the pixels are as
    /// bright as teeth, so that closing the lips covers all of them.
    fn snap_to_teeth(&mut self, img: &RgbImage, look: &MouthLook) {
        let at = |m: &MouthFrame, u: f32, v: f32| {
            let q = m.point(u, v);
            luma(bilinear_rgb(img, q[0], q[1]))
        };
        let n = self.seam.len();
        let seam_luma: Vec<f32> = (0..n)
            .map(|s| at(self, self.u_of(s), self.seam[s]))
            .collect();
        let mid: f32 = seam_luma[n / 4..3 * n / 4].iter().sum::<f32>() / (n / 2) as f32;
        let lips = luma(look.lips);
        if mid < 1.15 * lips {
            return;
        }
        let threshold = (mid + lips) / 2.0;
        let reach = 0.6 * (self.upper_lip + self.lower_lip);
        for s in 0..n {
            let u = self.u_of(s);
            if u.abs() > 0.8 * self.half_width {
                continue;
            }
            let mut v = self.seam[s];
            while v > self.seam[s] - reach && at(self, u, v - 0.5) > threshold {
                v -= 0.5;
            }
            self.upper[s] = self.upper[s].min(v);
            let mut v = self.seam[s];
            while v < self.seam[s] + reach && at(self, u, v + 0.5) > threshold {
                v += 0.5;
            }
            self.lower[s] = self.lower[s].max(v);
        }
    }

    /// `u` of contour sample `s`.
    pub fn u_of(&self, s: usize) -> f32 {
        -self.half_width + 2.0 * self.half_width * s as f32 / (self.seam.len() - 1) as f32
    }
}

fn m_profile_sqrt(m: &MouthFrame, u: f32) -> f32 {
    m.profile(u).sqrt()
}

/// Per-basis displacement of a source point (mouth coordinates `u`, `v`) in one layer, in the face's axes
/// (along the mouth, down the face), at parameter value 1. Eyes and brows come from the control-point fields.
struct MouthFields<'a> {
    m: &'a MouthFrame,
    fh: f32,
    mw: f32,
    /// Half the jaw's width (between the jaw angles) and the chin's `v`.
    jaw_half: f32,
    chin_v: f32,
    /// How much closure relaxes the portrait's smile, 0..=1 (see [`smile_relax`]).
    relax: f32,
}

/// Share of an open mouth's gap the lower lip closes (the jaw lifts it); the upper lip comes down the rest.
const LOWER_CLOSES: f32 = 0.7;
/// How far closure lifts the jaw (lower lip, chin and jaw line together), in rest gaps at the middle of the
/// mouth: more than the lips' gap, so the lower lip presses up under the upper one as lips press on /m b p/,
/// and the chin comes up. Lips shut under a jaw left dropped still read as parted, to a viewer and to the face
/// mesh (measured: the default's bilabials go from none to most closed).
const JAW_CLOSES: f32 = 1.4;
/// A relaxed closure brings the corners down by this share of how far the smile raises them, and in by this
/// share of the mouth's width.
const RELAX_DROP: f32 = 0.5;
const RELAX_IN: f32 = 0.06;

/// How much closure relaxes the portrait's smile: none on a neutral mouth or a slight smile (corners raised by
/// up to a tenth of the mouth's half-width: those close as they are), fully on a broad one (a fifth and more).
fn smile_relax(m: &MouthFrame) -> f32 {
    smooth((m.corner_lift() / m.half_width - 0.1) / 0.1)
}

impl MouthFields<'_> {
    /// Where closure relaxes a smile: the corners come in and down (both layers alike, so the lips stay
    /// together), most at the corners, nothing in the middle, fading above and below the lips and beyond the
    /// cheeks. A smile pressed shut still reads as parted lips (to a viewer and to the face mesh); a relaxed
    /// mouth's closure does not.
    fn relaxed_corners(&self, u: f32, v: f32) -> [f32; 2] {
        if self.relax <= 0.0 {
            return [0.0, 0.0];
        }
        let m = self.m;
        let hw = m.half_width;
        let t = (u / hw).clamp(-1.0, 1.0);
        let fade = 1.0 - smooth((u.abs() - hw) / (1.2 * hw));
        let across =
            1.0 - smooth((v - m.at(&m.seam, u)).abs() / (1.4 * (m.upper_lip + m.lower_lip) + 2.0));
        let k = self.relax * fade * across;
        [
            -RELAX_IN * self.mw * t * k,
            RELAX_DROP * m.corner_lift() * t * t * k,
        ]
    }

    /// Share of a lip's closing motion at `depth` pixels into the lip from its inner edge (`lip` thick): the
    /// whole lip moves, the skin beyond it stretches.
    fn closing_band(depth: f32, lip: f32) -> f32 {
        1.0 - smooth((depth - lip) / (1.6 * lip + 1.0))
    }

    /// How much of the jaw's motion a point of the lower face gets: the lower lip follows the opening profile
    /// (the corners are the hinge), the chin and jaw move as one, fading towards the jaw angles and below the
    /// chin (the neck and collar stay).
    fn jaw_share(&self, u: f32, v: f32) -> f32 {
        let m = self.m;
        let depth = (v - m.at(&m.seam, u)).max(0.0);
        let lip = m.profile(u);
        let chin = 0.85 * (1.0 - smooth((u.abs() - 0.55 * self.jaw_half) / (0.55 * self.jaw_half)));
        // The lip-to-chin transition is short in the middle (lip and chin move alike there) and long beside the
        // corners, where the lip barely moves and the chin fully: stretched skin, never a fold.
        let reach = 1.6 * m.lower_lip + 1.0;
        let reach = reach + (0.3 * self.fh - reach).max(0.0) * (1.0 - lip);
        let b = smooth(depth / reach);
        let share = lip + (chin - lip) * b;
        let below_chin = 1.0 - smooth((v - self.chin_v + 0.02 * self.fh) / (0.3 * self.fh));
        share * below_chin
    }

    /// How much of the upper lip's motion a point of the upper face gets: the lip itself, fading towards the nose.
    fn upper_share(&self, u: f32, v: f32) -> f32 {
        let m = self.m;
        let height = (m.at(&m.upper, u) - v).max(0.0);
        m.profile(u) * (1.0 - smooth(height / (2.2 * m.upper_lip + 1.0)))
    }

    /// Lower lip alone (for rounding): full on the lip, fading over the skin below it.
    fn lower_lip_share(&self, u: f32, v: f32) -> f32 {
        m_profile_sqrt(self.m, u) * self.lower_lip_band(u, v)
    }

    /// The lower lip's band, whatever `u`: 1 on the lip, fading over the skin below it.
    fn lower_lip_band(&self, u: f32, v: f32) -> f32 {
        let m = self.m;
        let depth = (v - m.at(&m.lower, u)).max(0.0);
        1.0 - smooth((depth - 0.6 * m.lower_lip) / (1.4 * m.lower_lip + 1.0))
    }

    /// Sideways share for width and rounding: the corners move most, the middle not at all, fading above and
    /// below the lips and beyond the cheeks.
    fn side_share(&self, u: f32, v: f32) -> f32 {
        let m = self.m;
        let hw = m.half_width;
        let along = (u / hw).clamp(-1.0, 1.0) * (1.0 - smooth((u.abs() - hw) / (1.2 * hw)));
        let across =
            1.0 - smooth((v - m.at(&m.seam, u)).abs() / (1.4 * (m.upper_lip + m.lower_lip) + 2.0));
        along * across
    }

    /// (along, down) displacement of layer `layer` for basis `k`.
    fn at(&self, layer: usize, k: usize, u: f32, v: f32) -> [f32; 2] {
        let a = JAW_DROP * self.fh;
        let m = self.m;
        let press = 0.004 * self.fh;
        match (layer, k) {
            (L_LOWER, B_JAW) => [0.0, a * self.jaw_share(u, v)],
            (L_TEETH, B_JAW) => [0.0, 0.9 * a],
            (L_UPPER, B_JAW) => [0.0, -0.14 * a * self.upper_share(u, v)],
            (L_UPPER | L_LOWER, B_WIDTH) => [0.09 * self.mw * self.side_share(u, v), 0.0],
            (L_UPPER | L_LOWER, B_ROUND) => {
                let side = -0.13 * self.mw * self.side_share(u, v);
                // A rounded mouth opens a little in the middle, as if pushed forward.
                let open = 0.018 * self.fh;
                let dv = if layer == L_UPPER {
                    -open * self.upper_share(u, v)
                } else {
                    open * self.lower_lip_share(u, v)
                };
                [side, dv]
            }
            // Closure brings the inner lips together (closing a mouth the portrait shows open: the jaw lifts the
            // lower lip most of the way, see JAW_CLOSES), presses them, and relaxes a smile.
            (L_UPPER, B_CLOSURE) => {
                let h = (m.at(&m.upper, u) - v).max(0.0);
                let w = Self::closing_band(h, m.upper_lip);
                let c = self.relaxed_corners(u, v);
                let close = (1.0 - LOWER_CLOSES) * m.rest_gap(u) + press * m.profile(u);
                [c[0], close * w + c[1]]
            }
            (L_LOWER, B_CLOSURE) => {
                let d = (v - m.at(&m.lower, u)).max(0.0);
                let w = Self::closing_band(d, m.lower_lip);
                let c = self.relaxed_corners(u, v);
                let close = LOWER_CLOSES * m.rest_gap(u) + press * m.profile(u);
                let jaw = JAW_CLOSES * m.rest_gap(0.0) * self.jaw_share(u, v);
                [c[0], c[1] - (close * w).max(jaw)]
            }
            _ => [0.0, 0.0],
        }
    }
}

impl WarpRig {
    pub fn build(img: &RgbImage, points: &[[f32; 3]]) -> Self {
        let p = |i: usize| [points[i][0], points[i][1]];
        let fh = len(sub(p(lm::CHIN_BOTTOM), p(lm::FOREHEAD))).max(8.0);
        let mw = len(sub(p(lm::MOUTH_LEFT), p(lm::MOUTH_RIGHT))).max(4.0);
        let dv = sub(p(lm::CHIN_BOTTOM), p(168));
        let dl = len(dv).max(1e-3);
        let down = [dv[0] / dl, dv[1] / dl];
        let right = [-down[1], down[0]];
        // Make `right` point from the subject's right mouth corner (61) to the left one (291).
        let corner = sub(p(lm::MOUTH_LEFT), p(lm::MOUTH_RIGHT));
        let right = if corner[0] * right[0] + corner[1] * right[1] < 0.0 {
            [-right[0], -right[1]]
        } else {
            right
        };
        let mut mouth = MouthFrame::build(points, down, right);
        let look = measure_look(img, points);
        mouth.snap_to_teeth(img, &look);
        let interocular = len(sub(
            mean(points, &[33, 133, 159, 145]),
            mean(points, &[263, 362, 386, 374]),
        ))
        .max(1.0);
        let jaw_half = (len(sub(p(172), p(397))) / 2.0).max(mouth.half_width * 1.5);
        let mf = MouthFields {
            m: &mouth,
            fh,
            mw,
            jaw_half,
            chin_v: mouth.local(p(lm::CHIN_BOTTOM))[1],
            relax: smile_relax(&mouth),
        };

        // Eyelids and brows: control points with a displacement per basis, interpolated with Shepard weights
        // between anchors that never move (nose, eye corners, forehead, a ring outside the face).
        let mut ctrl: Vec<([f32; 2], [[f32; 2]; N_BASIS])> = Vec::new();
        let mut add = |pos: [f32; 2], k: usize, d: [f32; 2]| {
            if let Some(c) = ctrl.iter_mut().find(|c| c.0 == pos) {
                c.1[k][0] += d[0];
                c.1[k][1] += d[1];
            } else {
                let mut b = [[0.0; 2]; N_BASIS];
                b[k] = d;
                ctrl.push((pos, b));
            }
        };
        let vec = |a: f32, b: f32| [a * right[0] + b * down[0], a * right[1] + b * down[1]];
        let lids = [
            (
                B_BLINK_R,
                &lm::RIGHT_EYE_UPPER,
                &lm::RIGHT_EYE_LOWER,
                159usize,
                145usize,
            ),
            (
                B_BLINK_L,
                &lm::LEFT_EYE_UPPER,
                &lm::LEFT_EYE_LOWER,
                386,
                374,
            ),
        ];
        let brow_lift = 0.028 * fh;
        for (k, upper, lower, top, bottom) in lids {
            let d = sub(p(bottom), p(top));
            let eye_gap = (d[0] * down[0] + d[1] * down[1]).max(0.0);
            const PROFILE: [f32; 7] = [0.45, 0.8, 0.95, 1.0, 0.95, 0.8, 0.45];
            for (&i, w) in upper.iter().zip(PROFILE) {
                add(p(i), k, vec(0.0, 0.92 * eye_gap * w));
                add(p(i), B_BROW, vec(0.0, -0.25 * brow_lift * w));
            }
            for &i in &lower[1..8] {
                add(p(i), k, vec(0.0, -0.08 * eye_gap));
            }
        }
        for &i in &lm::BROWS {
            add(p(i), B_BROW, vec(0.0, -brow_lift));
        }
        let zero = [0.0, 0.0];
        const STILL: [usize; 22] = [
            1, 4, 5, 195, 168, 33, 263, 133, 362, 234, 454, 93, 323, 127, 356, 132, 361, 2, 98,
            327, 10, 151,
        ];
        for &i in STILL.iter().chain(lm::LIPS_OUTER.iter()) {
            add(p(i), 0, zero);
        }
        let fc = mean(points, &FACE_OVAL);
        let oval: Vec<[f32; 2]> = FACE_OVAL.iter().map(|&i| p(i)).collect();
        let mut ring = Vec::new();
        for &i in &FACE_OVAL {
            let d = sub(p(i), fc);
            let q = [fc[0] + 1.3 * d[0], fc[1] + 1.3 * d[1]];
            ring.push(q);
            add(q, 0, zero);
        }

        // Region: the ring's bounding box (and the jaw's reach below the chin), clipped to the image.
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for q in &ring {
            x0 = x0.min(q[0]);
            y0 = y0.min(q[1]);
            x1 = x1.max(q[0]);
            y1 = y1.max(q[1]);
        }
        let clampx = |v: f32| (v.max(0.0) as usize).min(w);
        let clampy = |v: f32| (v.max(0.0) as usize).min(h);
        let chin = p(lm::CHIN_BOTTOM);
        y1 = y1.max(chin[1] + 0.4 * fh);
        let roi = [
            clampx(x0.floor()),
            clampy(y0.floor()),
            clampx(x1.ceil() + 1.0),
            clampy(y1.ceil() + 1.0),
        ];
        let gw = (roi[2].saturating_sub(roi[0])).div_ceil(CELL) + 1;
        let gh = (roi[3].saturating_sub(roi[1])).div_ceil(CELL) + 1;

        let eps = (0.03 * fh).powi(2);
        let taper_len = (0.08 * fh).max(2.0);
        let (rw, rh) = ((roi[2] - roi[0]) as f32, (roi[3] - roi[1]) as f32);
        let mut basis = vec![[0.0f32; 2]; gw * gh * N_LAYERS * N_BASIS];
        let mut head_weight = vec![0.0f32; gw * gh];
        let (ax, ay) = (0.62 * fh, 0.75 * fh); // radii of the face ellipse for head motion
        let to_image = |d: [f32; 2]| vec(d[0], d[1]);
        for j in 0..gh {
            for i in 0..gw {
                let lx = (i * CELL) as f32;
                let ly = (j * CELL) as f32;
                let (x, y) = (roi[0] as f32 + lx, roi[1] as f32 + ly);
                let edge = lx.min(ly).min(rw - lx).min(rh - ly);
                let taper = smooth(edge / taper_len);
                let node = j * gw + i;
                // Eyes and brows (the same in every layer: they are far from the mouth).
                let mut wsum = 0.0f32;
                let mut acc = [[0.0f32; 2]; N_BASIS];
                for (pos, d) in &ctrl {
                    let d2 = (x - pos[0]).powi(2) + (y - pos[1]).powi(2);
                    let wt = 1.0 / (d2 + eps).powi(2);
                    wsum += wt;
                    for k in [B_BLINK_R, B_BLINK_L, B_BROW] {
                        acc[k][0] += wt * d[k][0];
                        acc[k][1] += wt * d[k][1];
                    }
                }
                // The lips' fields fade outside the face oval; the jaw's own falloff (sideways and below the chin)
                // keeps the background and the collar still.
                let inside = smooth((signed_distance(&oval, [x, y]) + 0.05 * fh) / (0.1 * fh));
                let [u, v] = mouth.local([x, y]);
                for layer in 0..N_LAYERS {
                    for k in 0..N_BASIS {
                        let d = match k {
                            B_BLINK_R | B_BLINK_L | B_BROW => {
                                [acc[k][0] / wsum * taper, acc[k][1] / wsum * taper]
                            }
                            _ => {
                                let f = to_image(mf.at(layer, k, u, v));
                                let t = taper * if layer == L_UPPER { inside } else { 1.0 };
                                [f[0] * t, f[1] * t]
                            }
                        };
                        basis[(node * N_LAYERS + layer) * N_BASIS + k] = d;
                    }
                }
                let e = (((x - fc[0]) / ax).powi(2) + ((y - fc[1]) / ay).powi(2)).sqrt();
                head_weight[node] = smooth((1.6 - e) / 0.6) * taper;
            }
        }

        let lip_basis = [L_UPPER, L_LOWER].map(|layer| {
            (0..CONTOUR_SAMPLES)
                .map(|s| {
                    let u = mouth.u_of(s);
                    let v = if layer == L_UPPER {
                        mouth.upper[s]
                    } else {
                        mouth.lower[s]
                    };
                    std::array::from_fn(|k| mf.at(layer, k, u, v))
                })
                .collect()
        });

        WarpRig {
            lip_basis,
            roi,
            gw,
            gh,
            basis,
            head_weight,
            pivot: [chin[0] + 0.25 * fh * down[0], chin[1] + 0.25 * fh * down[1]],
            look,
            mouth,
            face_height: fh,
            mouth_width: mw,
            interocular,
        }
    }
}

/// Colour of the skin and the lips near the mouth, its brightness, and the photo's grain.
fn measure_look(img: &RgbImage, points: &[[f32; 3]]) -> MouthLook {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let px = |q: [f32; 3]| -> Option<[f32; 3]> {
        let (x, y) = (q[0].round() as i64, q[1].round() as i64);
        (x >= 1 && y >= 1 && x < w - 1 && y < h - 1).then(|| {
            let p = img.get_pixel(x as u32, y as u32);
            [p[0] as f32, p[1] as f32, p[2] as f32]
        })
    };
    let avg = |ids: &[usize]| -> Option<[f32; 3]> {
        let v: Vec<[f32; 3]> = ids.iter().filter_map(|&i| px(points[i])).collect();
        (!v.is_empty()).then(|| {
            let s = v
                .iter()
                .fold([0.0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
            let n = v.len() as f32;
            [s[0] / n, s[1] / n, s[2] / n]
        })
    };
    let skin = avg(&lm::CHIN).unwrap_or([180.0, 140.0, 120.0]);
    // Lip colour: halfway between the outer and inner contours, upper and lower lip.
    let lip_points: Vec<[f32; 3]> = [
        (0usize, 13usize),
        (17, 14),
        (37, 82),
        (267, 312),
        (84, 87),
        (314, 317),
    ]
    .iter()
    .map(|&(a, b)| {
        let (pa, pb) = (points[a], points[b]);
        [(pa[0] + pb[0]) / 2.0, (pa[1] + pb[1]) / 2.0, 0.0]
    })
    .collect();
    let lips = {
        let v: Vec<[f32; 3]> = lip_points.iter().filter_map(|&q| px(q)).collect();
        if v.is_empty() {
            [skin[0] * 0.85, skin[1] * 0.6, skin[2] * 0.6]
        } else {
            let s = v
                .iter()
                .fold([0.0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
            let n = v.len() as f32;
            [s[0] / n, s[1] / n, s[2] / n]
        }
    };
    let light = (luma(skin) / 150.0).clamp(0.45, 1.3);
    // Grain: spread of luma minus its 3x3 mean over small patches of cheek and chin skin.
    let mut acc = Vec::new();
    for &i in lm::CHIN.iter().chain([50usize, 280, 205, 425].iter()) {
        let (cx, cy) = (points[i][0].round() as i64, points[i][1].round() as i64);
        for dy in -2..=2i64 {
            for dx in -2..=2i64 {
                let (x, y) = (cx + dx, cy + dy);
                if x < 1 || y < 1 || x >= w - 1 || y >= h - 1 {
                    continue;
                }
                let l = |x: i64, y: i64| {
                    let p = img.get_pixel(x as u32, y as u32);
                    luma([p[0] as f32, p[1] as f32, p[2] as f32])
                };
                let mut m = 0.0;
                for yy in -1..=1 {
                    for xx in -1..=1 {
                        m += l(x + xx, y + yy);
                    }
                }
                acc.push(l(x, y) - m / 9.0);
            }
        }
    }
    let grain = if acc.len() > 4 {
        let n = acc.len() as f32;
        let mu = acc.iter().sum::<f32>() / n;
        (acc.iter().map(|d| (d - mu).powi(2)).sum::<f32>() / n)
            .sqrt()
            .clamp(0.0, 12.0)
    } else {
        2.0
    };
    MouthLook {
        skin,
        lips,
        light,
        grain,
    }
}
