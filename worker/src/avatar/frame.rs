//! Rendered frames and their conversion to I420.

/// One RGBA frame (row-major, 4 bytes per pixel, alpha 255).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl Frame {
    /// I420 (BT.601 limited range): Y plane, then U and V at half resolution. Width and height are even.
    pub fn to_i420(&self, out: &mut Vec<u8>) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w / 2, h / 2);
        out.clear();
        out.resize(w * h + 2 * cw * ch, 0);
        let (y_plane, uv) = out.split_at_mut(w * h);
        let (u_plane, v_plane) = uv.split_at_mut(cw * ch);
        for (y_row, px_row) in y_plane
            .chunks_exact_mut(w)
            .zip(self.rgba.chunks_exact(w * 4))
        {
            for (y, px) in y_row.iter_mut().zip(px_row.chunks_exact(4)) {
                let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
                *y = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
            }
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let i = ((2 * cy + dy) * w + 2 * cx + dx) * 4;
                    r += self.rgba[i] as i32;
                    g += self.rgba[i + 1] as i32;
                    b += self.rgba[i + 2] as i32;
                }
                let (r, g, b) = ((r + 2) / 4, (g + 2) / 4, (b + 2) / 4);
                u_plane[cy * cw + cx] =
                    (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
                v_plane[cy * cw + cx] =
                    (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            }
        }
    }

    /// The frame as an RGB image (for JPEG encoding, contact sheets).
    pub fn to_rgb_image(&self) -> image::RgbImage {
        let rgb: Vec<u8> = self
            .rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        image::RgbImage::from_raw(self.width, self.height, rgb)
            .unwrap_or_else(|| image::RgbImage::new(1, 1))
    }
}
