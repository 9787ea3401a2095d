//! The face crop a generator sees and the paste-back of what it returns: the square box around the face (from
//! the portrait's mesh), the face tensor (`masked_and_reference`), and the feathered blend of the generated crop
//! into a frame.

use image::RgbImage;

use crate::avatar::Frame;
use crate::model::pack::{ChannelOrder, CropSpec, PasteRegion, PasteSpec};

/// A square box in image pixels (may extend past the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub x0: i32,
    pub y0: i32,
    pub side: u32,
}

impl CropBox {
    /// The box of `spec` around the mesh points: side `scale * max(width, height)` of their extent, centred on
    /// it and moved down by `shift_down * side`, rounded to whole pixels.
    pub fn around(points: &[[f32; 3]], spec: &CropSpec) -> Option<Self> {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in points {
            x0 = x0.min(p[0]);
            y0 = y0.min(p[1]);
            x1 = x1.max(p[0]);
            y1 = y1.max(p[1]);
        }
        if !(x1 > x0 && y1 > y0) {
            return None;
        }
        let side = ((x1 - x0).max(y1 - y0) * spec.scale).round().max(8.0);
        let cx = (x0 + x1) / 2.0;
        let cy = (y0 + y1) / 2.0 + spec.shift_down * side;
        Some(Self {
            x0: (cx - side / 2.0).round() as i32,
            y0: (cy - side / 2.0).round() as i32,
            side: side as u32,
        })
    }
}

/// Pixel value conversion of a pack: 0..255 <-> `[lo, hi]`, and the channel order.
#[derive(Debug, Clone, Copy)]
pub struct Pixels {
    pub order: ChannelOrder,
    pub lo: f32,
    pub hi: f32,
}

impl Pixels {
    /// Tensor channel `c` holds image channel `source(c)`.
    fn source(self, c: usize) -> usize {
        match self.order {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => 2 - c,
        }
    }
    fn to_tensor(self, v: f32) -> f32 {
        self.lo + (self.hi - self.lo) * v / 255.0
    }
    fn to_pixel(self, t: f32) -> f32 {
        ((t - self.lo) / (self.hi - self.lo) * 255.0).clamp(0.0, 255.0)
    }
}

/// Bilinear sample of `img` at (`x`, `y`), integer coordinates being pixel centres; edges clamped.
fn sample(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (xf, yf) = (x.floor(), y.floor());
    let (fx, fy) = (x - xf, y - yf);
    let (xi, yi) = (xf as i64, yf as i64);
    let px = |x: i64, y: i64| {
        let p = img.get_pixel(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32);
        [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
    };
    let (a, b, c, d) = (
        px(xi, yi),
        px(xi + 1, yi),
        px(xi, yi + 1),
        px(xi + 1, yi + 1),
    );
    let mut out = [0.0; 3];
    for k in 0..3 {
        let top = a[k] + (b[k] - a[k]) * fx;
        let bottom = c[k] + (d[k] - c[k]) * fx;
        out[k] = top + (bottom - top) * fy;
    }
    out
}

/// The `[6, S, S]` face input of `masked_and_reference` for a still portrait: channels 0-2 the crop with its lower
/// half (rows S/2..S) set to the value of a black pixel, channels 3-5 the crop itself (Wav2Lip's inference passes
/// the same frame as reference). Resampled bilinearly (pixel-centre aligned), outside the image the nearest edge.
pub fn face_input(img: &RgbImage, b: &CropBox, s: usize, px: &Pixels) -> Vec<f32> {
    let mut out = vec![0.0f32; 6 * s * s];
    let scale = b.side as f32 / s as f32;
    let black = px.to_tensor(0.0);
    for y in 0..s {
        let sy = b.y0 as f32 + (y as f32 + 0.5) * scale - 0.5;
        for x in 0..s {
            let sx = b.x0 as f32 + (x as f32 + 0.5) * scale - 0.5;
            let rgb = sample(img, sx, sy);
            for c in 0..3 {
                let v = px.to_tensor(rgb[px.source(c)]);
                out[(3 + c) * s * s + y * s + x] = v;
                out[c * s * s + y * s + x] = if y >= s / 2 { black } else { v };
            }
        }
    }
    out
}

/// Pastes generated crops onto frames: precomputed per-pixel weights of the feathered mask over the box.
#[derive(Debug, Clone)]
pub struct Paster {
    pub crop: CropBox,
    s: usize,
    px: Pixels,
    /// Weight of each box pixel, row-major `side * side`.
    weight: Vec<f32>,
}

/// Linear ramp: 0 at `d = 0`, 1 at `d >= f` (f > 0); 1 everywhere for f = 0.
fn ramp(d: f32, f: f32) -> f32 {
    if f <= 0.0 {
        1.0
    } else {
        (d / f).clamp(0.0, 1.0)
    }
}

impl Paster {
    pub fn new(crop: CropBox, s: usize, px: Pixels, spec: &PasteSpec) -> Self {
        let side = crop.side as usize;
        let f = spec.feather * side as f32;
        let mut weight = vec![0.0; side * side];
        for y in 0..side {
            let cy = y as f32 + 0.5;
            let mut wy = ramp(cy.min(side as f32 - cy), f);
            if spec.region == PasteRegion::LowerHalf {
                // Rises from 0 at the middle line to 1 a feather's width below it.
                wy = wy.min(if f <= 0.0 {
                    if cy >= side as f32 / 2.0 { 1.0 } else { 0.0 }
                } else {
                    ramp(cy - side as f32 / 2.0, f)
                });
            }
            for x in 0..side {
                let cx = x as f32 + 0.5;
                weight[y * side + x] = wy * ramp(cx.min(side as f32 - cx), f);
            }
        }
        Self {
            crop,
            s,
            px,
            weight,
        }
    }

    /// Mask weight of box pixel (`x`, `y`).
    pub fn weight(&self, x: usize, y: usize) -> f32 {
        self.weight[y * self.crop.side as usize + x]
    }

    /// Blends the generated `[3, S, S]` crop `out` into `frame` (RGBA) over the box, resampled bilinearly.
    pub fn paste(&self, out: &[f32], frame: &mut Frame) {
        let s = self.s;
        let side = self.crop.side as usize;
        let (fw, fh) = (frame.width as i32, frame.height as i32);
        let scale = s as f32 / side as f32;
        let at = |c: usize, x: usize, y: usize| out[c * s * s + y * s + x];
        for by in 0..side {
            let y = self.crop.y0 + by as i32;
            if y < 0 || y >= fh {
                continue;
            }
            let sy = ((by as f32 + 0.5) * scale - 0.5).clamp(0.0, (s - 1) as f32);
            let (y0, fy) = (sy.floor() as usize, sy - sy.floor());
            let y1 = (y0 + 1).min(s - 1);
            for bx in 0..side {
                let x = self.crop.x0 + bx as i32;
                let w = self.weight[by * side + bx];
                if x < 0 || x >= fw || w <= 0.0 {
                    continue;
                }
                let sx = ((bx as f32 + 0.5) * scale - 0.5).clamp(0.0, (s - 1) as f32);
                let (x0, fx) = (sx.floor() as usize, sx - sx.floor());
                let x1 = (x0 + 1).min(s - 1);
                let i = ((y as usize) * frame.width as usize + x as usize) * 4;
                for c in 0..3 {
                    let top = at(c, x0, y0) + (at(c, x1, y0) - at(c, x0, y0)) * fx;
                    let bottom = at(c, x0, y1) + (at(c, x1, y1) - at(c, x0, y1)) * fx;
                    let v = self.px.to_pixel(top + (bottom - top) * fy);
                    let ch = self.px.source(c);
                    let old = f32::from(frame.rgba[i + ch]);
                    frame.rgba[i + ch] = (old + (v - old) * w).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(order: ChannelOrder) -> Pixels {
        Pixels {
            order,
            lo: 0.0,
            hi: 1.0,
        }
    }

    #[test]
    fn box_around_points() {
        let pts = [[10.0, 20.0, 0.0], [50.0, 100.0, 0.0]];
        let b = CropBox::around(
            &pts,
            &CropSpec {
                scale: 1.0,
                shift_down: 0.1,
            },
        )
        .unwrap();
        assert_eq!(b.side, 80);
        assert_eq!((b.x0, b.y0), (-10, 28));
        assert!(
            CropBox::around(
                &[],
                &CropSpec {
                    scale: 1.0,
                    shift_down: 0.0
                }
            )
            .is_none()
        );
    }

    #[test]
    fn face_input_masks_the_lower_half_and_orders_channels() {
        let img = RgbImage::from_fn(40, 40, |_, _| image::Rgb([200, 100, 50]));
        let b = CropBox {
            x0: 0,
            y0: 0,
            side: 40,
        };
        let t = face_input(&img, &b, 8, &px(ChannelOrder::Bgr));
        let at = |c: usize, y: usize, x: usize| t[c * 64 + y * 8 + x];
        // BGR: channel 0 is blue.
        assert!((at(3, 2, 2) - 50.0 / 255.0).abs() < 1e-6);
        assert!((at(5, 2, 2) - 200.0 / 255.0).abs() < 1e-6);
        assert!((at(0, 3, 2) - 50.0 / 255.0).abs() < 1e-6, "upper half kept");
        assert_eq!(at(0, 4, 2), 0.0, "lower half masked");
        assert_eq!(at(2, 7, 7), 0.0);
        assert!(
            (at(4, 7, 7) - 100.0 / 255.0).abs() < 1e-6,
            "reference unmasked"
        );
    }

    #[test]
    fn paste_feathers_and_round_trips_colour() {
        let spec = PasteSpec {
            feather: 0.25,
            region: PasteRegion::Full,
        };
        let b = CropBox {
            x0: 2,
            y0: 2,
            side: 16,
        };
        let p = Paster::new(b, 4, px(ChannelOrder::Bgr), &spec);
        assert!(p.weight(0, 0) < 0.05, "edges fade out");
        assert_eq!(p.weight(8, 8), 1.0, "the middle is the model's");
        let mut frame = Frame {
            width: 20,
            height: 20,
            rgba: vec![0; 20 * 20 * 4],
        };
        // A uniform generated crop of RGB (255, 128, 0), given in BGR order.
        let mut out = vec![0.0f32; 3 * 16];
        out[..16].fill(0.0);
        out[16..32].fill(128.0 / 255.0);
        out[32..].fill(1.0);
        p.paste(&out, &mut frame);
        let at = |x: usize, y: usize| &frame.rgba[(y * 20 + x) * 4..(y * 20 + x) * 4 + 3];
        assert_eq!(at(10, 10), [255, 128, 0]);
        assert_eq!(at(0, 0), [0, 0, 0], "outside the box untouched");
        let edge = at(2, 10)[0];
        assert!(edge > 0 && edge < 128, "feathered edge blends: {edge}");

        let lower = Paster::new(
            b,
            4,
            px(ChannelOrder::Rgb),
            &PasteSpec {
                feather: 0.1,
                region: PasteRegion::LowerHalf,
            },
        );
        assert_eq!(lower.weight(8, 2), 0.0, "upper half kept");
        assert_eq!(lower.weight(8, 12), 1.0);
    }
}
