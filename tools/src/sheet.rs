//! Contact sheets: a row of face crops from speech frames, small enough for `docs/`.

use image::{RgbImage, imageops::FilterType};
use lipcast_worker::avatar::{Frame, PreparedPortrait};

use crate::portraits::face_square;

/// Tiles `frames` (face crops of `scale` face heights, `tile` pixels square) into rows of `per_row`.
pub fn contact_sheet(
    portrait: &PreparedPortrait,
    frames: &[Frame],
    per_row: usize,
    tile: u32,
    scale: f32,
) -> RgbImage {
    let tile_side = tile.max(16);
    let per_row = per_row.max(1);
    let rows = frames.len().div_ceil(per_row).max(1);
    let mut sheet = RgbImage::new(tile_side * per_row as u32, tile_side * rows as u32);
    for (i, f) in frames.iter().enumerate() {
        let crop = face_square(&f.to_rgb_image(), portrait, scale);
        let tile = image::imageops::resize(&crop, tile_side, tile_side, FilterType::Triangle);
        let (x, y) = (
            (i % per_row) as u32 * tile_side,
            (i / per_row) as u32 * tile_side,
        );
        image::imageops::overlay(&mut sheet, &tile, x as i64, y as i64);
    }
    sheet
}
