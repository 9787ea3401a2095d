//! The renderer: warps the prepared portrait from mouth parameters and idle motion, paints the mouth interior
//! where the lips part, and returns RGBA frames at the portrait's size.
//!
//! Per frame: the rig's basis fields are summed with the frame's coefficients (plus rigid head motion) on the
//! coarse grid; the forward field is inverted by one fixed-point step (backward map); every pixel of the region
//! of interest samples the portrait bilinearly at its interpolated source position. Outside that region the
//! output is the portrait, byte for byte.

use crate::audio::MouthParams;

use super::{
    frame::Frame,
    idle::{IdleMotion, IdlePose},
    prepare::PreparedPortrait,
    rig::{B_BLINK_L, B_BLINK_R, B_CLOSURE, B_JAW, B_ROUND, B_WIDTH, CELL, N_BASIS, WarpRig},
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

pub struct Renderer {
    width: usize,
    height: usize,
    src: Vec<u8>,
    rig: WarpRig,
    idle: IdleMotion,
    opts: RenderOptions,
    frame: Frame,
    forward: Vec<[f32; 2]>,
    backward: Vec<[f32; 2]>,
    row: Vec<[f32; 2]>,
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

impl Renderer {
    pub fn new(portrait: &PreparedPortrait, opts: RenderOptions) -> Self {
        let (w, h) = (portrait.width() as usize, portrait.height() as usize);
        let src: Vec<u8> = portrait
            .image
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let nodes = portrait.rig.gw * portrait.rig.gh;
        Self {
            width: w,
            height: h,
            frame: Frame {
                width: w as u32,
                height: h as u32,
                rgba: src.clone(),
            },
            src,
            rig: portrait.rig.clone(),
            idle: IdleMotion::new(opts.seed, opts.fps),
            opts,
            forward: vec![[0.0; 2]; nodes],
            backward: vec![[0.0; 2]; nodes],
            row: vec![[0.0; 2]; portrait.rig.gw],
        }
    }

    /// Output size (the prepared portrait's).
    pub fn size(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    /// The idle pose of frame `index` (what `render` adds to the mouth).
    pub fn idle_pose(&mut self, index: u64) -> IdlePose {
        if self.opts.idle_motion {
            self.idle.pose(index)
        } else {
            IdlePose::default()
        }
    }

    /// Renders frame `index` (counted at `fps` from the session start) with mouth `params`. The same portrait,
    /// seed, index and parameters always give the same bytes.
    pub fn render(&mut self, params: &MouthParams, index: u64) -> &Frame {
        let p = params.clamped();
        let pose = self.idle_pose(index);
        let mut coef = [0.0f32; N_BASIS];
        coef[B_JAW] = p.jaw_open * (1.0 - 0.9 * p.closure);
        coef[B_WIDTH] = p.width;
        coef[B_ROUND] = p.round;
        coef[B_CLOSURE] = p.closure;
        coef[B_BLINK_R] = pose.blink;
        coef[B_BLINK_L] = pose.blink;
        self.build_fields(&coef, &pose);
        self.warp();
        self.paint_mouth();
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
                let mut d = [0.0f32; 2];
                for (k, ck) in coef.iter().enumerate() {
                    if *ck != 0.0 {
                        let b = rig.basis[node * N_BASIS + k];
                        d[0] += ck * b[0];
                        d[1] += ck * b[1];
                    }
                }
                let hw = rig.head_weight[node];
                if hw > 0.0 {
                    let (rx, ry) = (x - rig.pivot[0], y - rig.pivot[1]);
                    d[0] += hw * (c * rx - s * ry - rx + shift[0]);
                    d[1] += hw * (s * rx + c * ry - ry + shift[1]);
                }
                self.forward[node] = d;
            }
        }
        // Backward map by one fixed-point step: src = x - F(x - F(x)).
        for j in 0..rig.gh {
            for i in 0..rig.gw {
                let node = j * rig.gw + i;
                let (x, y) = (
                    (rig.roi[0] + i * CELL) as f32,
                    (rig.roi[1] + j * CELL) as f32,
                );
                let f = self.forward[node];
                self.backward[node] = field_at(rig, &self.forward, x - f[0], y - f[1]);
            }
        }
    }

    fn warp(&mut self) {
        let rig = &self.rig;
        let (w, h) = (self.width, self.height);
        let [x0, y0, x1, y1] = rig.roi;
        let (maxx, maxy) = ((w - 1) as f32, (h - 1) as f32);
        for y in y0..y1 {
            let gy = (y - y0) as f32 / CELL as f32;
            let j = (gy as usize).min(rig.gh.saturating_sub(2));
            let fy = gy - j as f32;
            let mut any = false;
            for i in 0..rig.gw {
                let a = self.backward[j * rig.gw + i];
                let b = self.backward[((j + 1).min(rig.gh - 1)) * rig.gw + i];
                self.row[i] = [a[0] + (b[0] - a[0]) * fy, a[1] + (b[1] - a[1]) * fy];
                any |= self.row[i] != [0.0, 0.0];
            }
            let out_row = &mut self.frame.rgba[y * w * 4..(y + 1) * w * 4];
            if !any {
                out_row[x0 * 4..x1 * 4]
                    .copy_from_slice(&self.src[(y * w + x0) * 4..(y * w + x1) * 4]);
                continue;
            }
            for x in x0..x1 {
                let gx = (x - x0) as f32 / CELL as f32;
                let i = (gx as usize).min(rig.gw.saturating_sub(2));
                let fx = gx - i as f32;
                let (a, b) = (self.row[i], self.row[(i + 1).min(rig.gw - 1)]);
                let d = [a[0] + (b[0] - a[0]) * fx, a[1] + (b[1] - a[1]) * fx];
                let o = x * 4;
                if d[0].abs() < 1e-3 && d[1].abs() < 1e-3 {
                    out_row[o..o + 4]
                        .copy_from_slice(&self.src[(y * w + x) * 4..(y * w + x) * 4 + 4]);
                    continue;
                }
                let sx = (x as f32 - d[0]).clamp(0.0, maxx);
                let sy = (y as f32 - d[1]).clamp(0.0, maxy);
                let (ix, iy) = (sx as usize, sy as usize);
                let (ix1, iy1) = ((ix + 1).min(w - 1), (iy + 1).min(h - 1));
                let wx = ((sx - ix as f32) * 256.0) as u32;
                let wy = ((sy - iy as f32) * 256.0) as u32;
                let (p00, p10) = ((iy * w + ix) * 4, (iy * w + ix1) * 4);
                let (p01, p11) = ((iy1 * w + ix) * 4, (iy1 * w + ix1) * 4);
                for ch in 0..3 {
                    let top =
                        self.src[p00 + ch] as u32 * (256 - wx) + self.src[p10 + ch] as u32 * wx;
                    let bot =
                        self.src[p01 + ch] as u32 * (256 - wx) + self.src[p11 + ch] as u32 * wx;
                    out_row[o + ch] = ((top * (256 - wy) + bot * wy + (1 << 15)) >> 16) as u8;
                }
                out_row[o + 3] = 255;
            }
        }
    }

    fn paint_mouth(&mut self) {
        let rig = &self.rig;
        let fh = rig.face_height;
        // Displaced inner lip contour (LIPS_INNER order: 0 right corner, 1..=9 lower lip, 10 left corner,
        // 11..=19 upper lip).
        let pts: Vec<[f32; 2]> = rig
            .inner_lips
            .iter()
            .map(|q| {
                let d = field_at(rig, &self.forward, q[0], q[1]);
                [q[0] + d[0], q[1] + d[1]]
            })
            .collect();
        let (top, bottom) = (pts[15], pts[5]);
        let gap = (bottom[0] - top[0]) * rig.down[0] + (bottom[1] - top[1]) * rig.down[1];
        let fade = ((gap - rig.rest_gap - 0.8) / 2.0).clamp(0.0, 1.0);
        if fade <= 0.0 {
            return;
        }
        let (mut bx0, mut by0, mut bx1, mut by1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for q in &pts {
            bx0 = bx0.min(q[0]);
            by0 = by0.min(q[1]);
            bx1 = bx1.max(q[0]);
            by1 = by1.max(q[1]);
        }
        let (w, h) = (self.width as i64, self.height as i64);
        let xs = (
            (bx0.floor() as i64 - 1).max(0),
            (bx1.ceil() as i64 + 2).min(w),
        );
        let ys = (
            (by0.floor() as i64 - 1).max(0),
            (by1.ceil() as i64 + 2).min(h),
        );
        // Mouth-local coordinates: u along the mouth (right corner = 0), v down the face.
        let (o, right, down) = (pts[0], rig.right, rig.down);
        let loc = |q: [f32; 2]| {
            let d = [q[0] - o[0], q[1] - o[1]];
            [
                d[0] * right[0] + d[1] * right[1],
                d[0] * down[0] + d[1] * down[1],
            ]
        };
        let u_left = loc(pts[10])[0];
        let (cx, half) = (u_left / 2.0, (u_left.abs() / 2.0).max(1.0));
        // Upper and lower lip chains as polylines in u.
        let upper: Vec<[f32; 2]> = std::iter::once(pts[0])
            .chain(pts[11..20].iter().rev().copied())
            .chain([pts[10]])
            .map(loc)
            .collect();
        let lower: Vec<[f32; 2]> = pts[0..=10].iter().copied().map(loc).collect();
        let y_on = |chain: &[[f32; 2]], x: f32| -> Option<f32> {
            chain.windows(2).find_map(|s| {
                let (a, b) = (s[0], s[1]);
                let (lo, hi) = (a[0].min(b[0]), a[0].max(b[0]));
                (x >= lo && x <= hi && hi > lo)
                    .then(|| a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))
            })
        };
        let light = rig.light;
        let gap_norm = (gap / (0.06 * fh)).clamp(0.0, 1.0);
        for y in ys.0..ys.1 {
            for x in xs.0..xs.1 {
                let (px, py) = (x as f32, y as f32);
                // Signed distance to the polygon (positive inside), for a one-pixel feathered edge.
                let mut inside = false;
                let mut dmin = f32::MAX;
                for k in 0..pts.len() {
                    let (a, b) = (pts[k], pts[(k + 1) % pts.len()]);
                    if (a[1] > py) != (b[1] > py)
                        && px < a[0] + (py - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
                    {
                        inside = !inside;
                    }
                    let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
                    let l2 = (ex * ex + ey * ey).max(1e-6);
                    let t = (((px - a[0]) * ex + (py - a[1]) * ey) / l2).clamp(0.0, 1.0);
                    let (qx, qy) = (a[0] + t * ex - px, a[1] + t * ey - py);
                    dmin = dmin.min(qx * qx + qy * qy);
                }
                let sd = if inside { dmin.sqrt() } else { -dmin.sqrt() };
                let alpha = (0.5 + sd / 1.2).clamp(0.0, 1.0) * fade;
                if alpha <= 0.0 {
                    continue;
                }
                let [lu, lv] = loc([px, py]);
                let (Some(ty), Some(by)) = (y_on(&upper, lu), y_on(&lower, lu)) else {
                    continue;
                };
                let col_gap = (by - ty).max(0.5);
                let t = ((lv - ty) / col_gap).clamp(0.0, 1.0);
                let pr = (1.0 - ((lu - cx) / half).powi(2)).max(0.0);
                let spr = pr.sqrt();
                // Cavity: dark red, darker in the middle and towards the corners.
                let deep = smoothstep(t * 1.8) * (0.6 + 0.4 * spr);
                let mut col = [
                    92.0 + (26.0 - 92.0) * deep,
                    34.0 + (8.0 - 34.0) * deep,
                    30.0 + (8.0 - 30.0) * deep,
                ];
                for c in &mut col {
                    *c *= 0.55 + 0.45 * spr;
                }
                // Tongue near the bottom when the mouth is well open.
                if t > 0.55 {
                    let k = ((t - 0.55) / 0.45) * spr * gap_norm * 0.8;
                    let tongue = [150.0, 66.0, 60.0];
                    for c in 0..3 {
                        col[c] += (tongue[c] * (0.6 + 0.4 * spr) - col[c]) * k;
                    }
                }
                // Upper teeth under the upper lip, lower teeth above the lower lip once the jaw is open enough.
                // Teeth: soft-edged bands, dimmer towards the corners and towards their free edge.
                let th = (0.45 * col_gap).min(0.05 * fh) * spr;
                let k_up = ((th - (lv - ty)) / 1.5).clamp(0.0, 1.0);
                if k_up > 0.0 {
                    let shade =
                        (0.6 + 0.4 * pr) * (1.0 - 0.3 * smoothstep((lv - ty) / th.max(1e-3) - 0.4));
                    let teeth = [226.0 * shade, 220.0 * shade, 206.0 * shade];
                    for (c, t) in col.iter_mut().zip(teeth) {
                        *c += (t - *c) * k_up;
                    }
                }
                let tl = if gap > 0.035 * fh {
                    (0.2 * col_gap).min(0.02 * fh) * spr
                } else {
                    0.0
                };
                let k_lo = ((tl - (by - lv)) / 1.5).clamp(0.0, 1.0);
                if k_lo > 0.0 {
                    let shade = 0.45 + 0.35 * pr;
                    let teeth = [200.0 * shade, 193.0 * shade, 181.0 * shade];
                    for (c, t) in col.iter_mut().zip(teeth) {
                        *c += (t - *c) * k_lo;
                    }
                }
                let o = ((y * w + x) * 4) as usize;
                for (dst, c) in self.frame.rgba[o..o + 3].iter_mut().zip(col) {
                    let v = *dst as f32;
                    *dst = (v + ((c * light).min(255.0) - v) * alpha).round() as u8;
                }
            }
        }
    }
}
