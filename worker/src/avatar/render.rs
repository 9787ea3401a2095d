//! The renderer: moves the prepared portrait's layers from mouth parameters and idle motion and returns RGBA
//! frames at the portrait's size.
//!
//! Per frame: each layer's basis fields (see [`super::rig`]) are summed with the frame's coefficients (plus the
//! rigid head motion) on the coarse grid, and each forward field is inverted by fixed-point steps (backward map).
//! The inner lips' edges are moved exactly (per contour sample, not through the grid, which would blur a lip a
//! few pixels thick). Every pixel of the region of interest is then composited front to back: the upper face
//! above the moved upper lip, the lower face below the moved lower lip (each sampled through its backward map,
//! its source kept on its own side of its lip's rest edge, so a lip is never coloured by the teeth behind it),
//! else the mouth interior (the portrait's own teeth where it shows them, else the photographed interior and a
//! shaded cavity); lip edges are anti-aliased, and closed lips get the thin shadow line where they meet. Outside
//! that region the output is the portrait, byte for byte.

use crate::audio::MouthParams;

use super::{
    frame::Frame,
    idle::{IdleMotion, IdlePose},
    interior::{self, TEETH_EDGE, Texture},
    prepare::PreparedPortrait,
    rig::{
        B_BLINK_L, B_BLINK_R, B_BROW, B_CLOSURE, B_JAW, B_ROUND, B_WIDTH, CELL, JAW_DROP, L_LOWER,
        L_TEETH, L_UPPER, MouthFrame, N_BASIS, N_LAYERS, WarpRig, polyline_at,
    },
    sample::{bilinear_rgb, luma},
};

/// Renderer settings.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// Seed of the idle motion (blink times, head sway phases).
    pub seed: u64,
    /// Frame rate the frame index counts in.
    pub fps: u32,
    /// Blinks and head sway on (true) or a still head (false).
    pub idle_motion: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            fps: 25,
            idle_motion: true,
        }
    }
}

/// Fields moved per frame: the three layers of the rig and the head alone (the upper teeth).
const N_FIELDS: usize = N_LAYERS + 1;
const F_HEAD: usize = N_LAYERS;

/// Fixed-point steps inverting a forward field: enough for the jaw's largest gradients to settle.
const INVERSION_STEPS: usize = 3;

/// The moved inner lips are sampled over this many mouth half-widths either side of the middle (beyond, the
/// seam runs on sideways at the corners' height).
const LIP_SPAN: f32 = 1.6;
const LIP_SAMPLES: usize = 97;
/// How far inside its own lip a lip pixel's source is kept (pixels): its colour is lip, never the teeth or
/// the gap the portrait shows behind it.
const LIP_MARGIN: f32 = 1.0;
/// Darkening at the middle of the line where closed lips meet.
const CONTACT_SHADOW: f32 = 0.5;

pub struct Renderer {
    width: usize,
    height: usize,
    src: Vec<u8>,
    rig: WarpRig,
    idle: IdleMotion,
    opts: RenderOptions,
    frame: Frame,
    /// Forward and backward node fields, `[field][node]`.
    forward: [Vec<[f32; 2]>; N_FIELDS],
    backward: [Vec<[f32; 2]>; N_FIELDS],
    /// Backward fields interpolated along the current row, `[field][grid column]`.
    row: [Vec<[f32; 2]>; N_FIELDS],
    /// Whether the portrait shows its own teeth (an open mouth at rest): then they are used, not the texture's.
    own_teeth: bool,
    /// Texture colour gain for this portrait's light.
    gain: [f32; 3],
    /// The frame's jaw opening in pixels (for the interior's shading).
    jaw_px: f32,
    /// This frame's upper and lower inner lip (indexed [`L_UPPER`], [`L_LOWER`]): `v` in the rest mouth frame at `LIP_SAMPLES` values of `u` from
    /// `-LIP_SPAN` to `LIP_SPAN` half-widths.
    lips: [Vec<f32>; 2],
    /// Width of the lips' anti-aliased edge, pixels: one pixel, softer on a large mouth (a lip's edge is not a
    /// cut).
    edge: f32,
    /// Beyond this distance from a lip's edge (pixels) a layer's source cannot have crossed it: the grid's
    /// error is a fraction of the lips' motion.
    near_lips: f32,
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Bilinear interpolation of a node field at image point (`x`, `y`); zero outside the grid.
fn field_at(rig: &WarpRig, field: &[[f32; 2]], x: f32, y: f32) -> [f32; 2] {
    let gx = (x - rig.roi[0] as f32) / CELL as f32;
    let gy = (y - rig.roi[1] as f32) / CELL as f32;
    if gx < 0.0 || gy < 0.0 || gx > (rig.gw - 1) as f32 || gy > (rig.gh - 1) as f32 {
        return [0.0, 0.0];
    }
    let (i, j) = (
        (gx as usize).min(rig.gw.saturating_sub(2)),
        (gy as usize).min(rig.gh.saturating_sub(2)),
    );
    let (fx, fy) = (gx - i as f32, gy - j as f32);
    let at = |ii: usize, jj: usize| field[(jj.min(rig.gh - 1)) * rig.gw + ii.min(rig.gw - 1)];
    let (a, b, c, d) = (at(i, j), at(i + 1, j), at(i, j + 1), at(i + 1, j + 1));
    let mut out = [0.0; 2];
    for k in 0..2 {
        let top = a[k] + (b[k] - a[k]) * fx;
        let bot = c[k] + (d[k] - c[k]) * fx;
        out[k] = top + (bot - top) * fy;
    }
    out
}

/// Bilinear RGB sample of an RGBA buffer at (`sx`, `sy`), clamped to the image.
fn sample(src: &[u8], w: usize, h: usize, sx: f32, sy: f32) -> [f32; 3] {
    let sx = sx.clamp(0.0, (w - 1) as f32);
    let sy = sy.clamp(0.0, (h - 1) as f32);
    let (ix, iy) = (sx as usize, sy as usize);
    let (ix1, iy1) = ((ix + 1).min(w - 1), (iy + 1).min(h - 1));
    let (fx, fy) = (sx - ix as f32, sy - iy as f32);
    let (p00, p10) = ((iy * w + ix) * 4, (iy * w + ix1) * 4);
    let (p01, p11) = ((iy1 * w + ix) * 4, (iy1 * w + ix1) * 4);
    let mut out = [0.0; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        let top = src[p00 + ch] as f32 * (1.0 - fx) + src[p10 + ch] as f32 * fx;
        let bot = src[p01 + ch] as f32 * (1.0 - fx) + src[p11 + ch] as f32 * fx;
        *o = top + (bot - top) * fy;
    }
    out
}

/// Whether the portrait's mouth at rest shows teeth: the middle of the gap between its inner lips is clearly
/// brighter than its lips, or a little brighter and much less saturated (teeth are near white; pale lips can be
/// almost as bright).
fn shows_teeth(img: &image::RgbImage, m: &MouthFrame, look: &super::rig::MouthLook) -> bool {
    let chroma = |c: [f32; 3]| c[0].max(c[1]).max(c[2]) - c[0].min(c[1]).min(c[2]);
    let (mut l, mut ch) = (0.0f32, 0.0f32);
    const N: usize = 11;
    for s in 0..N {
        let u = (-0.6 + 0.12 * s as f32) * m.half_width;
        let q = m.point(u, m.at(&m.seam, u));
        let c = bilinear_rgb(img, q[0], q[1]);
        l += luma(c) / N as f32;
        ch += chroma(c) / N as f32;
    }
    let lips = luma(look.lips);
    l > 1.15 * lips || (l > 1.05 * lips && ch < 0.75 * chroma(look.lips))
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

impl Renderer {
    pub fn new(portrait: &PreparedPortrait, opts: RenderOptions) -> Self {
        let (w, h) = (portrait.width() as usize, portrait.height() as usize);
        let src: Vec<u8> = portrait
            .image
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let rig = portrait.rig.clone();
        let nodes = rig.gw * rig.gh;
        let m = &rig.mouth;
        let widest = (0..=20)
            .map(|s| m.rest_gap(-m.half_width + m.half_width * s as f32 / 10.0))
            .fold(0.0f32, f32::max);
        let own_teeth =
            widest > 0.06 * rig.mouth_width && shows_teeth(&portrait.image, m, &rig.look);
        Self {
            width: w,
            height: h,
            frame: Frame {
                width: w as u32,
                height: h as u32,
                rgba: src.clone(),
            },
            src,
            own_teeth,
            gain: interior::colour_gain(rig.look.skin),
            idle: IdleMotion::new(opts.seed, opts.fps),
            opts,
            forward: std::array::from_fn(|_| vec![[0.0; 2]; nodes]),
            backward: std::array::from_fn(|_| vec![[0.0; 2]; nodes]),
            row: std::array::from_fn(|_| vec![[0.0; 2]; rig.gw]),
            rig,
            jaw_px: 0.0,
            lips: [vec![0.0; LIP_SAMPLES], vec![0.0; LIP_SAMPLES]],
            edge: (0.012 * portrait.rig.mouth_width).max(1.0),
            near_lips: 0.1 * portrait.rig.face_height + 3.0,
        }
    }

    /// Whether the portrait's own teeth are shown when the mouth opens (else the photographed interior's).
    pub fn shows_own_teeth(&self) -> bool {
        self.own_teeth
    }

    /// Output size (the prepared portrait's).
    pub fn size(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    /// The pose of frame `index` with the mouth at `params` (what `render` adds to the mouth): blinks and sway,
    /// and while speaking nods and brow raises.
    pub fn idle_pose(&mut self, params: &MouthParams, index: u64) -> IdlePose {
        if self.opts.idle_motion {
            self.idle.pose_speaking(index, params.clamped().opening())
        } else {
            IdlePose::default()
        }
    }

    /// Renders frame `index` (counted at `fps` from the session start) with mouth `params`. The same portrait,
    /// seed and sequence of calls always give the same bytes.
    pub fn render(&mut self, params: &MouthParams, index: u64) -> &Frame {
        let pose = self.idle_pose(params, index);
        self.render_pose(params, &pose)
    }

    /// Renders mouth `params` with an explicit head, eyelid and brow pose.
    pub fn render_pose(&mut self, params: &MouthParams, pose: &IdlePose) -> &Frame {
        let p = params.clamped();
        let mut coef = [0.0f32; N_BASIS];
        // Small openings count for more than linearly (speech lives in them). The front end's closure ramps
        // through the neighbouring vowels; only its upper part closes, and then fully: /m b p/ must touch.
        let closure = smoothstep((p.closure - 0.45) / 0.35);
        coef[B_JAW] = p.jaw_open.powf(0.65) * (1.0 - closure);
        coef[B_WIDTH] = p.width;
        coef[B_ROUND] = p.round;
        coef[B_CLOSURE] = closure;
        coef[B_BLINK_R] = pose.blink;
        coef[B_BLINK_L] = pose.blink;
        coef[B_BROW] = pose.brow;
        self.jaw_px = coef[B_JAW] * JAW_DROP * self.rig.face_height;
        self.build_fields(&coef, pose);
        self.move_lips(&coef);
        self.composite();
        &self.frame
    }

    fn build_fields(&mut self, coef: &[f32; N_BASIS], pose: &IdlePose) {
        let rig = &self.rig;
        let fh = rig.face_height;
        let (s, c) = pose.roll.sin_cos();
        let shift = [pose.shift[0] * fh, pose.shift[1] * fh];
        for j in 0..rig.gh {
            for i in 0..rig.gw {
                let node = j * rig.gw + i;
                let (x, y) = (
                    (rig.roi[0] + i * CELL) as f32,
                    (rig.roi[1] + j * CELL) as f32,
                );
                let hw = rig.head_weight[node];
                let head = if hw > 0.0 {
                    let (rx, ry) = (x - rig.pivot[0], y - rig.pivot[1]);
                    [
                        hw * (c * rx - s * ry - rx + shift[0]),
                        hw * (s * rx + c * ry - ry + shift[1]),
                    ]
                } else {
                    [0.0, 0.0]
                };
                for layer in 0..N_LAYERS {
                    let mut d = head;
                    let base = (node * N_LAYERS + layer) * N_BASIS;
                    for (k, ck) in coef.iter().enumerate() {
                        if *ck != 0.0 {
                            let b = rig.basis[base + k];
                            d[0] += ck * b[0];
                            d[1] += ck * b[1];
                        }
                    }
                    self.forward[layer][node] = d;
                }
                self.forward[F_HEAD][node] = head;
            }
        }
        // Backward maps by fixed-point steps: b = F(x - b).
        for f in 0..N_FIELDS {
            self.backward[f].copy_from_slice(&self.forward[f]);
            for _ in 0..INVERSION_STEPS {
                for j in 0..rig.gh {
                    for i in 0..rig.gw {
                        let node = j * rig.gw + i;
                        let (x, y) = (
                            (rig.roi[0] + i * CELL) as f32,
                            (rig.roi[1] + j * CELL) as f32,
                        );
                        let b = self.backward[f][node];
                        self.backward[f][node] =
                            field_at(rig, &self.forward[f], x - b[0], y - b[1]);
                    }
                }
            }
        }
    }

    /// Where this frame puts the inner lips: each contour sample moved by the bases at the lip itself (exact,
    /// not through the grid) and by the head, resampled evenly along the mouth.
    fn move_lips(&mut self, coef: &[f32; N_BASIS]) {
        let rig = &self.rig;
        let m = &rig.mouth;
        for (side, rest) in [(L_UPPER, &m.upper), (L_LOWER, &m.lower)] {
            let moved: Vec<[f32; 2]> = rest
                .iter()
                .enumerate()
                .map(|(s, &v)| {
                    let u = m.u_of(s);
                    let mut d = [0.0f32; 2];
                    for (k, ck) in coef.iter().enumerate() {
                        let b = rig.lip_basis[side][s][k];
                        d[0] += ck * b[0];
                        d[1] += ck * b[1];
                    }
                    let q = m.point(u, v);
                    let h = field_at(rig, &self.forward[F_HEAD], q[0], q[1]);
                    d[0] += h[0] * m.right[0] + h[1] * m.right[1];
                    d[1] += h[0] * m.down[0] + h[1] * m.down[1];
                    [u + d[0], v + d[1]]
                })
                .collect();
            for (t, out) in self.lips[side].iter_mut().enumerate() {
                let u = m.half_width * LIP_SPAN * (2.0 * t as f32 / (LIP_SAMPLES - 1) as f32 - 1.0);
                *out = polyline_at(&moved, u);
            }
        }
        // Closed lips meet; the mesh may leave them a hair across each other.
        let [upper, lower] = &mut self.lips;
        for (t, l) in upper.iter().zip(lower.iter_mut()) {
            *l = l.max(*t);
        }
    }

    /// `v` of this frame's inner lip `side` ([`L_UPPER`] or [`L_LOWER`]) at `u`, rest mouth frame.
    fn lip_at(&self, side: usize, u: f32) -> f32 {
        let c = &self.lips[side];
        let span = self.rig.mouth.half_width * LIP_SPAN;
        let t = ((u / span + 1.0) / 2.0 * (LIP_SAMPLES - 1) as f32)
            .clamp(0.0, (LIP_SAMPLES - 1) as f32);
        let i = (t as usize).min(LIP_SAMPLES - 2);
        c[i] + (c[i + 1] - c[i]) * (t - i as f32)
    }

    fn composite(&mut self) {
        let (w, h) = (self.width, self.height);
        let [x0, y0, x1, y1] = self.rig.roi;
        let (gw, gh) = (self.rig.gw, self.rig.gh);
        for y in y0..y1 {
            let gy = (y - y0) as f32 / CELL as f32;
            let j = (gy as usize).min(gh.saturating_sub(2));
            let fy = gy - j as f32;
            let mut any = false;
            for f in 0..N_FIELDS {
                for i in 0..gw {
                    let a = self.backward[f][j * gw + i];
                    let b = self.backward[f][((j + 1).min(gh - 1)) * gw + i];
                    let v = [a[0] + (b[0] - a[0]) * fy, a[1] + (b[1] - a[1]) * fy];
                    self.row[f][i] = v;
                    any |= v != [0.0, 0.0];
                }
            }
            if !any {
                let (a, b) = ((y * w + x0) * 4, (y * w + x1) * 4);
                self.frame.rgba[a..b].copy_from_slice(&self.src[a..b]);
                continue;
            }
            for x in x0..x1 {
                let gx = (x - x0) as f32 / CELL as f32;
                let i = (gx as usize).min(gw.saturating_sub(2));
                let fx = gx - i as f32;
                let disp = |row: &[[f32; 2]]| {
                    let (a, b) = (row[i], row[(i + 1).min(gw - 1)]);
                    [a[0] + (b[0] - a[0]) * fx, a[1] + (b[1] - a[1]) * fx]
                };
                let o = (y * w + x) * 4;
                let du = disp(&self.row[L_UPPER]);
                let dl = disp(&self.row[L_LOWER]);
                if du == [0.0, 0.0] && dl == [0.0, 0.0] {
                    let src = &self.src[o..o + 4];
                    self.frame.rgba[o..o + 4].copy_from_slice(src);
                    continue;
                }
                let m = &self.rig.mouth;
                let (px, py) = (x as f32, y as f32);
                // Coverage from where this frame puts the lips' edges; colour from each layer's backward map,
                // its source kept on its own side of its lip's rest edge.
                let [u, v] = m.local([px, py]);
                let below_upper = v - self.lip_at(L_UPPER, u);
                let above_lower = self.lip_at(L_LOWER, u) - v;
                let alpha_u = (0.5 - below_upper / self.edge).clamp(0.0, 1.0);
                let upper_col = |r: &Self| {
                    let su = r.own_side(L_UPPER, [px - du[0], py - du[1]], below_upper);
                    sample(&r.src, w, h, su[0], su[1])
                };
                let col = if alpha_u >= 1.0 {
                    upper_col(self)
                } else {
                    // Coverage front to back: the upper lip, then the lower lip, then whatever of the pixel is
                    // left to the interior (none where the lips meet, as beside the corners).
                    let alpha_l = (0.5 - above_lower / self.edge)
                        .clamp(0.0, 1.0)
                        .min(1.0 - alpha_u);
                    // Beyond the inner corners the lips do not part: whatever the two faces leave uncovered
                    // along the seam's sideways run is lower face, never interior, or a dark thread would cross
                    // the cheeks.
                    let parts =
                        1.0 - smoothstep((u.abs() - 0.9 * m.half_width) / (0.1 * m.half_width));
                    let rest = (1.0 - alpha_u - alpha_l) * parts;
                    let alpha_l = 1.0 - alpha_u - rest;
                    let mut c = [0.0f32; 3];
                    let mut add = |col: [f32; 3], k: f32| {
                        for (a, b) in c.iter_mut().zip(col) {
                            *a += b * k;
                        }
                    };
                    if alpha_u > 0.0 {
                        add(upper_col(self), alpha_u);
                    }
                    if alpha_l > 0.0 {
                        let sl = self.own_side(L_LOWER, [px - dl[0], py - dl[1]], above_lower);
                        add(sample(&self.src, w, h, sl[0], sl[1]), alpha_l);
                    }
                    if rest > 1e-3 {
                        add(self.interior(x, y, below_upper, above_lower), rest);
                    }
                    c
                };
                let col = self.contact_shadow(col, u, below_upper, above_lower);
                let out = &mut self.frame.rgba[o..o + 4];
                for (dst, c) in out.iter_mut().zip(col) {
                    *dst = (c + 0.5).clamp(0.0, 255.0) as u8;
                }
                out[3] = 255;
            }
        }
    }

    /// Source point `src` of a pixel covered by lip `side`'s face ([`L_UPPER`] or [`L_LOWER`]), kept [`LIP_MARGIN`] on that lip's side of its
    /// rest edge (above the upper lip, below the lower one). `inside` is how far the pixel lies inside the lip
    /// (negative: beyond its edge); far inside, the grid's source cannot have crossed the edge.
    fn own_side(&self, side: usize, src: [f32; 2], inside: f32) -> [f32; 2] {
        if inside < -self.near_lips {
            return src;
        }
        let m = &self.rig.mouth;
        let [u, v] = m.local(src);
        let (contour, sign) = match side {
            L_UPPER => (&m.upper, -1.0),
            _ => (&m.lower, 1.0),
        };
        let edge = m.at(contour, u) + sign * LIP_MARGIN;
        if (v - edge) * sign < 0.0 {
            m.point(u, edge)
        } else {
            src
        }
    }

    /// Where the lips meet, the thin shadow line between them (what makes closed lips read as closed, not
    /// melted together): strongest where they are pressed, gone once they part.
    fn contact_shadow(
        &self,
        col: [f32; 3],
        u: f32,
        below_upper: f32,
        above_lower: f32,
    ) -> [f32; 3] {
        let gap = below_upper + above_lower;
        if gap > 1.5 {
            return col;
        }
        let m = &self.rig.mouth;
        let meet = 0.5 * (below_upper - above_lower);
        let width = 0.5 + 0.008 * self.rig.mouth_width;
        if meet.abs() > 3.0 * width || u.abs() >= 0.88 * m.half_width {
            return col;
        }
        let line = (-(meet / width).powi(2)).exp();
        let along = m.profile(u).sqrt();
        let k = 1.0 - CONTACT_SHADOW * line * along * (1.0 - gap.max(0.0) / 1.5);
        [col[0] * k, col[1] * k, col[2] * k]
    }

    /// The mouth interior at output pixel (`x`, `y`), which lies `below_upper` pixels below this frame's upper
    /// inner lip and `above_lower` above its lower one.
    fn interior(&self, x: usize, y: usize, below_upper: f32, above_lower: f32) -> [f32; 3] {
        let m = &self.rig.mouth;
        let (w, h) = (self.width, self.height);
        let (px, py) = (x as f32, y as f32);
        let gx = (x - self.rig.roi[0]) as f32 / CELL as f32;
        let i = (gx as usize).min(self.rig.gw.saturating_sub(2));
        let fx = gx - i as f32;
        let disp = |row: &[[f32; 2]]| {
            let (a, b) = (row[i], row[(i + 1).min(self.rig.gw - 1)]);
            [a[0] + (b[0] - a[0]) * fx, a[1] + (b[1] - a[1]) * fx]
        };
        // Skull-fixed and jaw-fixed sources of this pixel.
        let dh = disp(&self.row[F_HEAD]);
        let dt = disp(&self.row[L_TEETH]);
        let sh = [px - dh[0], py - dh[1]];
        let st = [px - dt[0], py - dt[1]];
        let [uh, vh] = m.local(sh);
        let [ut, vt] = m.local(st);
        let cavity = self.cavity(uh, below_upper, above_lower, x, y);
        if self.own_teeth {
            // The portrait's own interior: its upper part stays with the skull, its lower part goes with the jaw.
            let seam_h = m.at(&m.seam, uh);
            let k_up = ((seam_h - vh) + 0.5).clamp(0.0, 1.0)
                * ((vh - m.at(&m.upper, uh)) + 1.5).clamp(0.0, 1.0);
            let seam_t = m.at(&m.seam, ut);
            let k_lo = ((vt - seam_t) + 0.5).clamp(0.0, 1.0)
                * ((m.at(&m.lower, ut) - vt) + 1.5).clamp(0.0, 1.0);
            let mut col = self.synthetic(cavity, x, y, [uh, vh], [ut, vt], below_upper, false);
            if k_lo > 0.0 {
                col = mix(col, sample(&self.src, w, h, st[0], st[1]), k_lo);
            }
            if k_up > 0.0 {
                col = mix(col, sample(&self.src, w, h, sh[0], sh[1]), k_up);
            }
            return col;
        }
        self.synthetic(cavity, x, y, [uh, vh], [ut, vt], below_upper, true)
    }

    /// The photographed teeth over the cavity: the lower ones at jaw-fixed point `jaw` (mouth coordinates), the
    /// upper ones (when `upper`) at skull-fixed point `skull`.
    #[allow(clippy::too_many_arguments)]
    fn synthetic(
        &self,
        cavity: [f32; 3],
        x: usize,
        y: usize,
        skull: [f32; 2],
        jaw: [f32; 2],
        below_upper: f32,
        upper: bool,
    ) -> [f32; 3] {
        let m = &self.rig.mouth;
        let ([uh, vh], [ut, vt]) = (skull, jaw);
        let Some(tex) = Texture::get() else {
            return cavity;
        };
        let mw = self.rig.mouth_width;
        let hw = m.half_width;
        let grain = self.rig.look.grain * interior::grain(x, y);
        let light = |c: [f32; 3], k: f32| {
            [
                c[0] * self.gain[0] * k + grain,
                c[1] * self.gain[1] * k + grain,
                c[2] * self.gain[2] * k + grain,
            ]
        };
        let mut col = cavity;
        // Lower teeth, carried by the jaw: their edges just above the rest seam, in the shadow of the upper ones.
        let tx_l = ut / (0.8 * hw);
        let edge_l = m.at(&m.seam, ut) + 0.03 * mw;
        let height_l = 0.08 * mw;
        if tx_l.abs() < 1.0 && vt > edge_l - 1.0 && vt < edge_l + height_l {
            let ty = TEETH_EDGE * (1.0 - (vt - edge_l) / height_l);
            let side = 1.0 - smoothstep((tx_l.abs() - 0.7) / 0.3);
            let k = ((vt - edge_l) + 0.5).clamp(0.0, 1.0) * side;
            let shade = 0.6 * (1.0 - 0.4 * tx_l.abs().powi(3));
            col = mix(col, light(tex.sample(tx_l, ty), shade), k);
        }
        // Upper teeth, fixed to the skull: edges a little below the rest seam, gums hidden under the upper lip.
        let tx_u = uh / (0.92 * hw);
        let edge_u = m.at(&m.seam, uh) + 0.02 * mw * m.profile(uh).sqrt();
        let height_u = 0.17 * mw;
        if upper && tx_u.abs() < 1.0 && vh < edge_u + 1.0 {
            let ty = TEETH_EDGE * (1.0 - ((edge_u - vh) / height_u).clamp(0.0, 1.0));
            let side = 1.0 - smoothstep((tx_u.abs() - 0.75) / 0.25);
            let k = ((edge_u - vh) + 0.5).clamp(0.0, 1.0) * side;
            // In the upper lip's shadow right under it.
            let shade = (1.0 - 0.45 * tx_u.abs().powi(3))
                * (0.86 + 0.14 * smoothstep(below_upper / (0.05 * mw + 1.0)));
            col = mix(col, light(tex.sample(tx_u, ty), shade), k);
        }
        col
    }

    /// The cavity behind the teeth: the lips' colour in their shadow, darker deep inside and towards the
    /// corners, with the tongue's back rising from below once the jaw is well open.
    fn cavity(&self, u: f32, below_upper: f32, above_lower: f32, x: usize, y: usize) -> [f32; 3] {
        let m: &MouthFrame = &self.rig.mouth;
        let mw = self.rig.mouth_width;
        let lips = self.rig.look.lips;
        let near = below_upper.min(above_lower).max(0.0);
        let depth = smoothstep(near / (0.06 * mw + 1.0));
        let side = 0.5 + 0.5 * m.profile(u);
        let k = (0.55 - 0.3 * depth) * side;
        let mut col = [lips[0] * k, lips[1] * k * 0.78, lips[2] * k * 0.8];
        // The tongue: a little lighter, behind the lower lip (a shadow between them keeps the lip's edge, as in a
        // photograph), more of it the wider the jaw.
        let open = (self.jaw_px / (0.05 * self.rig.face_height)).clamp(0.0, 1.0);
        let tongue_h = (0.5 * (below_upper + above_lower)).min(0.14 * mw) * open;
        if tongue_h > 0.5 && above_lower < tongue_h {
            let inset = 1.0 + 0.03 * mw;
            let behind = smoothstep((above_lower - 0.5 * inset) / inset);
            let t = above_lower / tongue_h;
            let dome = m.profile(u) * behind * (1.0 - smoothstep((t - 0.6) / 0.4));
            let tk = 0.62 * self.rig.look.light.min(1.0);
            let tongue = [lips[0] * tk, lips[1] * tk * 0.7, lips[2] * tk * 0.72];
            col = mix(col, tongue, dome * 0.85);
        }
        let g = 0.6 * self.rig.look.grain * interior::grain(x + 7, y + 3);
        [col[0] + g, col[1] + g, col[2] + g]
    }
}
