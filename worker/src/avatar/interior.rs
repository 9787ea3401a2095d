//! The photographed mouth interior: the teeth of the default portrait (a public-domain NASA photograph, see
//! `models/NOTICE`), resampled into mouth coordinates by `lipcast-look interior`. Portraits whose mouth is
//! closed have no teeth of their own to show when the lips part; this layer is warped to their mouth and matched
//! to their light instead of painting one.

use std::sync::OnceLock;

use image::RgbImage;

use super::sample::luma;

/// The texture: columns span the astronaut's mouth from her right inner lip corner (x = 0) to her left one;
/// rows run from her upper inner lip (y = 0) to her lower inner lip.
const TEXTURE_PNG: &[u8] = include_bytes!("../../../models/builtin/mouth_interior.png");

/// Row (0..=1) at which the upper teeth's edges stand in the texture.
pub const TEETH_EDGE: f32 = 0.72;

/// Mean skin colour around the astronaut's mouth (measured by `lipcast-look interior` with the texture), used to
/// carry the texture into another portrait's light.
pub const REFERENCE_SKIN: [f32; 3] = [189.0, 156.0, 130.0];

/// The decoded texture in linear floats, or none if the embedded file cannot be read (then the interior is
/// shaded without teeth).
pub struct Texture {
    w: usize,
    h: usize,
    rgb: Vec<[f32; 3]>,
}

impl Texture {
    /// The embedded texture, decoded once per process.
    pub fn get() -> Option<&'static Texture> {
        static TEXTURE: OnceLock<Option<Texture>> = OnceLock::new();
        TEXTURE
            .get_or_init(|| {
                let img = image::load_from_memory(TEXTURE_PNG).ok()?.to_rgb8();
                Some(Texture::from_image(&img))
            })
            .as_ref()
    }

    pub fn from_image(img: &RgbImage) -> Self {
        Texture {
            w: img.width().max(1) as usize,
            h: img.height().max(1) as usize,
            rgb: img
                .pixels()
                .map(|p| [p[0] as f32, p[1] as f32, p[2] as f32])
                .collect(),
        }
    }

    /// Bilinear sample at `tx` in -1..=1 (across the mouth) and `ty` in 0..=1 (down), clamped to the edges.
    pub fn sample(&self, tx: f32, ty: f32) -> [f32; 3] {
        let x = ((tx.clamp(-1.0, 1.0) + 1.0) / 2.0) * (self.w - 1) as f32;
        let y = ty.clamp(0.0, 1.0) * (self.h - 1) as f32;
        let (ix, iy) = ((x as usize).min(self.w - 1), (y as usize).min(self.h - 1));
        let (ix1, iy1) = ((ix + 1).min(self.w - 1), (iy + 1).min(self.h - 1));
        let (fx, fy) = (x - ix as f32, y - iy as f32);
        let at = |x: usize, y: usize| self.rgb[y * self.w + x];
        let (a, b, c, d) = (at(ix, iy), at(ix1, iy), at(ix, iy1), at(ix1, iy1));
        let mut out = [0.0; 3];
        for k in 0..3 {
            let top = a[k] + (b[k] - a[k]) * fx;
            let bot = c[k] + (d[k] - c[k]) * fx;
            out[k] = top + (bot - top) * fy;
        }
        out
    }
}

/// Per-channel gain that carries the texture from the astronaut's light into a portrait whose skin around the
/// mouth has colour `skin`: part of the change of brightness (teeth stay brighter than skin in the shade) and of
/// tint (teeth are not skin).
pub fn colour_gain(skin: [f32; 3]) -> [f32; 3] {
    let ratio = (luma(skin) / luma(REFERENCE_SKIN))
        .clamp(0.35, 1.4)
        .powf(0.6);
    let tint = |k: usize| {
        let target = skin[k] / luma(skin).max(1.0);
        let reference = REFERENCE_SKIN[k] / luma(REFERENCE_SKIN);
        (target / reference).clamp(0.6, 1.6).powf(0.4)
    };
    [ratio * tint(0), ratio * tint(1), ratio * tint(2)]
}

/// Deterministic grain in about -1.7..=1.7 (unit standard deviation) at pixel (`x`, `y`): the photo's grain is
/// fixed to the picture, so it must not shimmer from frame to frame.
pub fn grain(x: usize, y: usize) -> f32 {
    let mut h = (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    (h & 0xFFFF) as f32 / 65535.0 * 3.46 - 1.73
}
