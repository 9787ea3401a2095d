//! Makes `models/builtin/mouth_interior.png`: the default portrait's teeth (a public-domain NASA photograph),
//! resampled between its inner lips into mouth coordinates: columns from the right inner corner to the left one,
//! rows from the upper inner lip to the lower one.

use image::RgbImage;
use lipcast_worker::avatar::{PreparedPortrait, sample::bilinear_rgb};

/// Texture size (columns across the mouth, rows down).
pub const SIZE: (u32, u32) = (96, 32);

/// The texture, and the mean skin colour around the mouth it was lit by.
pub fn make(portrait: &PreparedPortrait) -> (RgbImage, [f32; 3]) {
    let m = &portrait.rig.mouth;
    let mut out = RgbImage::new(SIZE.0, SIZE.1);
    for ty in 0..SIZE.1 {
        for tx in 0..SIZE.0 {
            let u = (-1.0 + 2.0 * tx as f32 / (SIZE.0 - 1) as f32) * m.half_width;
            let (top, bottom) = (m.at(&m.upper, u), m.at(&m.lower, u));
            let v = top + (bottom - top) * ty as f32 / (SIZE.1 - 1) as f32;
            let q = m.point(u, v);
            let c = bilinear_rgb(&portrait.image, q[0], q[1]);
            out.put_pixel(
                tx,
                ty,
                image::Rgb([c[0].round() as u8, c[1].round() as u8, c[2].round() as u8]),
            );
        }
    }
    (out, portrait.rig.look.skin)
}
