//! The warp rig: how each mouth/eyelid parameter displaces the face, as fields on a coarse grid.
//!
//! Control points are mesh landmarks (lips, chin, jaw, eyelids) with a displacement per basis at parameter
//! value 1, plus anchors that never move (nose, eye corners, brows, a ring outside the face oval). Each basis is
//! interpolated over the grid once (Shepard weights), so a frame's displacement field is a weighted sum of
//! precomputed fields; the field is tapered to exactly zero at the border of the region of interest, so pixels
//! outside it never change.

use image::RgbImage;

use super::landmarks as lm;

/// Bases: jaw open, width, rounding, closure, right blink, left blink.
pub const N_BASIS: usize = 6;
pub const B_JAW: usize = 0;
pub const B_WIDTH: usize = 1;
pub const B_ROUND: usize = 2;
pub const B_CLOSURE: usize = 3;
pub const B_BLINK_R: usize = 4;
pub const B_BLINK_L: usize = 5;

/// Face silhouette (36 points).
const FACE_OVAL: [usize; 36] = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
    148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
];

/// Grid spacing in pixels.
pub const CELL: usize = 8;

#[derive(Debug, Clone)]
pub struct WarpRig {
    /// Region rewritten every frame: x0, y0, x1, y1 (exclusive), pixels.
    pub roi: [usize; 4],
    /// Grid nodes across and down; node (i, j) sits at (roi.x0 + i*CELL, roi.y0 + j*CELL).
    pub gw: usize,
    pub gh: usize,
    /// Per node, per basis: forward displacement (dx, dy) at parameter 1. Index `node * N_BASIS + k`.
    pub basis: Vec<[f32; 2]>,
    /// Per node: weight of the rigid head motion (1 on the face, 0 at the region's border).
    pub head_weight: Vec<f32>,
    /// Head rotation pivot (below the chin).
    pub pivot: [f32; 2],
    /// Inner lip contour (landmarks::LIPS_INNER order) at rest, pixels.
    pub inner_lips: Vec<[f32; 2]>,
    /// Gap between the inner lips at rest (along `down`), pixels: the mouth interior is painted only where the
    /// lips part further than in the portrait.
    pub rest_gap: f32,
    /// Face height (forehead to chin) and mouth width, pixels.
    pub face_height: f32,
    pub mouth_width: f32,
    /// Unit vectors of the face: `right` (towards the subject's left) and `down`.
    pub right: [f32; 2],
    pub down: [f32; 2],
    /// Brightness of the mouth region relative to a mid-grey skin (shading of the mouth interior).
    pub light: f32,
}

fn sub(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [a[0] - b[0], a[1] - b[1]]
}
fn len(a: [f32; 2]) -> f32 {
    (a[0] * a[0] + a[1] * a[1]).sqrt()
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
        let mc = [(p(61)[0] + p(291)[0]) / 2.0, (p(61)[1] + p(291)[1]) / 2.0];
        let u_of = |q: [f32; 2]| {
            let d = sub(q, mc);
            d[0] * right[0] + d[1] * right[1]
        };
        let hw = mw / 2.0;
        let prof = |i: usize| (1.0 - (u_of(p(i)) / hw).powi(2)).max(0.0).powf(0.6);
        let sgn = |i: usize| if u_of(p(i)) >= 0.0 { 1.0 } else { -1.0 };
        let vec = |a: f32, b: f32| [a * right[0] + b * down[0], a * right[1] + b * down[1]];

        // Control points: source position and displacement per basis.
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
        let o = 0.11 * fh;
        let gap = {
            let d = sub(p(lm::LOWER_LIP_INNER), p(lm::UPPER_LIP_INNER));
            (d[0] * down[0] + d[1] * down[1]).max(0.0)
        };
        for &i in lm::OUTER_LOWER.iter().chain(lm::INNER_LOWER.iter()) {
            add(p(i), B_JAW, vec(0.0, o * (0.35 + 0.65 * prof(i))));
            add(
                p(i),
                B_WIDTH,
                vec(sgn(i) * 0.10 * mw * (1.0 - prof(i)), 0.0),
            );
            add(
                p(i),
                B_ROUND,
                vec(-sgn(i) * 0.12 * mw * (1.0 - prof(i)), 0.02 * fh * prof(i)),
            );
        }
        for &i in lm::INNER_LOWER.iter() {
            add(
                p(i),
                B_CLOSURE,
                vec(0.0, -(0.5 * gap + 0.008 * fh) * prof(i)),
            );
        }
        for &i in lm::OUTER_LOWER.iter() {
            add(p(i), B_CLOSURE, vec(0.0, -0.006 * fh * prof(i)));
        }
        for &i in &lm::INNER_UPPER[1..10] {
            add(p(i), B_JAW, vec(0.0, -0.12 * o * prof(i)));
            add(
                p(i),
                B_CLOSURE,
                vec(0.0, (0.5 * gap + 0.008 * fh) * prof(i)),
            );
        }
        for &i in &lm::OUTER_UPPER[1..10] {
            add(p(i), B_JAW, vec(0.0, -0.05 * o * prof(i)));
            add(p(i), B_ROUND, vec(0.0, -0.02 * fh * prof(i)));
            add(p(i), B_CLOSURE, vec(0.0, 0.006 * fh * prof(i)));
        }
        for &i in lm::INNER_UPPER[1..10]
            .iter()
            .chain(lm::OUTER_UPPER[1..10].iter())
        {
            add(
                p(i),
                B_WIDTH,
                vec(sgn(i) * 0.10 * mw * (1.0 - prof(i)), 0.0),
            );
            add(
                p(i),
                B_ROUND,
                vec(-sgn(i) * 0.12 * mw * (1.0 - prof(i)), 0.0),
            );
        }
        for i in [61, 291, 78, 308] {
            add(p(i), B_JAW, vec(0.0, 0.3 * o));
            add(p(i), B_WIDTH, vec(sgn(i) * 0.10 * mw, 0.0));
            add(p(i), B_ROUND, vec(-sgn(i) * 0.14 * mw, 0.0));
        }
        for &i in &lm::CHIN {
            add(p(i), B_JAW, vec(0.0, 0.9 * o));
        }
        for &i in &lm::JAW_SIDE {
            add(p(i), B_JAW, vec(0.0, 0.35 * o));
        }
        // Eyelids: the upper lid comes down to the lower one.
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
        for (k, upper, lower, top, bottom) in lids {
            let d = sub(p(bottom), p(top));
            let eye_gap = (d[0] * down[0] + d[1] * down[1]).max(0.0);
            const PROFILE: [f32; 7] = [0.45, 0.8, 0.95, 1.0, 0.95, 0.8, 0.45];
            for (&i, w) in upper.iter().zip(PROFILE) {
                add(p(i), k, vec(0.0, 0.92 * eye_gap * w));
            }
            for &i in &lower[1..8] {
                add(p(i), k, vec(0.0, -0.08 * eye_gap));
            }
        }
        // Anchors.
        let zero = [0.0, 0.0];
        for &i in lm::FIXED.iter().chain(lm::BROWS.iter()) {
            add(p(i), 0, zero);
        }
        let fc = {
            let s = FACE_OVAL
                .iter()
                .fold([0.0, 0.0], |a, &i| [a[0] + p(i)[0], a[1] + p(i)[1]]);
            [s[0] / FACE_OVAL.len() as f32, s[1] / FACE_OVAL.len() as f32]
        };
        let mut ring = Vec::new();
        for &i in &FACE_OVAL {
            let d = sub(p(i), fc);
            let q = [fc[0] + 1.3 * d[0], fc[1] + 1.3 * d[1]];
            ring.push(q);
            add(q, 0, zero);
        }

        // Region: the ring's bounding box, clipped to the image.
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
        let smooth = |t: f32| {
            let t = t.clamp(0.0, 1.0);
            t * t * (3.0 - 2.0 * t)
        };
        let mut basis = vec![[0.0f32; 2]; gw * gh * N_BASIS];
        let mut head_weight = vec![0.0f32; gw * gh];
        let (ax, ay) = (0.62 * fh, 0.75 * fh); // radii of the face ellipse for head motion
        for j in 0..gh {
            for i in 0..gw {
                let lx = (i * CELL) as f32;
                let ly = (j * CELL) as f32;
                let (x, y) = (roi[0] as f32 + lx, roi[1] as f32 + ly);
                let edge = lx.min(ly).min(rw - lx).min(rh - ly);
                let taper = smooth(edge / taper_len);
                let node = j * gw + i;
                let mut wsum = 0.0f32;
                let mut acc = [[0.0f32; 2]; N_BASIS];
                for (pos, d) in &ctrl {
                    let d2 = (x - pos[0]).powi(2) + (y - pos[1]).powi(2);
                    let wt = 1.0 / (d2 + eps).powi(2);
                    wsum += wt;
                    for k in 0..N_BASIS {
                        acc[k][0] += wt * d[k][0];
                        acc[k][1] += wt * d[k][1];
                    }
                }
                for k in 0..N_BASIS {
                    basis[node * N_BASIS + k] =
                        [acc[k][0] / wsum * taper, acc[k][1] / wsum * taper];
                }
                let e = (((x - fc[0]) / ax).powi(2) + ((y - fc[1]) / ay).powi(2)).sqrt();
                head_weight[node] = smooth((1.6 - e) / 0.6) * taper;
            }
        }

        // Mean brightness of the skin around the mouth, for shading the mouth interior.
        let mut lum = 0.0f32;
        let mut n = 0.0f32;
        for &i in lm::OUTER_LOWER.iter().chain(lm::CHIN.iter()) {
            let q = p(i);
            if q[0] >= 0.0
                && q[1] >= 0.0
                && (q[0] as u32) < img.width()
                && (q[1] as u32) < img.height()
            {
                let px = img.get_pixel(q[0] as u32, q[1] as u32);
                lum += 0.299 * px[0] as f32 + 0.587 * px[1] as f32 + 0.114 * px[2] as f32;
                n += 1.0;
            }
        }
        let light = if n > 0.0 {
            (lum / n / 150.0).clamp(0.45, 1.3)
        } else {
            1.0
        };
        let chin = p(lm::CHIN_BOTTOM);
        WarpRig {
            roi,
            gw,
            gh,
            basis,
            head_weight,
            pivot: [chin[0] + 0.25 * fh * down[0], chin[1] + 0.25 * fh * down[1]],
            rest_gap: gap,
            inner_lips: lm::LIPS_INNER.iter().map(|&i| p(i)).collect(),
            face_height: fh,
            mouth_width: mw,
            right,
            down,
            light,
        }
    }
}
