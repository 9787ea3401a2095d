//! Pixel sampling helpers.

use image::RgbImage;

/// Rec. 601 luma of an RGB colour (0..=255 scale).
pub fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

/// Bilinear sample at (`x`, `y`) (pixel centres at integers); black outside the image.
pub fn bilinear_rgb(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (fx, fy) = (x.floor(), y.floor());
    let (ix, iy) = (fx as i64, fy as i64);
    let (ax, ay) = (x - fx, y - fy);
    let mut acc = [0.0f32; 3];
    for (dy, wy) in [(0, 1.0 - ay), (1, ay)] {
        for (dx, wx) in [(0, 1.0 - ax), (1, ax)] {
            let (px, py) = (ix + dx, iy + dy);
            if px < 0 || py < 0 || px >= w || py >= h {
                continue;
            }
            let p = img.get_pixel(px as u32, py as u32);
            let wgt = wx * wy;
            for c in 0..3 {
                acc[c] += p[c] as f32 * wgt;
            }
        }
    }
    acc
}
