//! The portraits the look is judged on: the ones committed (the default, a close-up crop of it, Grace Hopper's
//! closed-mouth portrait) and, for review only, whatever `../shared/portraits/` holds.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{RgbImage, imageops::FilterType};
use lipcast_worker::avatar::{FaceModels, PrepareOptions, PreparedPortrait, decode_portrait};

/// A portrait by name, with its encoded bytes.
#[derive(Debug, Clone)]
pub struct Portrait {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The repository's `models/` folder.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The committed test portraits: `default`, `default-closeup` (the default cropped so the face fills the frame)
/// and `hopper` (closed mouth, glasses; provenance in `models/NOTICE`).
pub fn committed(models: &mut FaceModels) -> anyhow::Result<Vec<Portrait>> {
    let default = read(&models_dir().join("portraits/default.jpg"))?;
    let closeup = closeup(models, &default)?;
    Ok(vec![
        Portrait {
            name: "default".into(),
            bytes: default,
        },
        Portrait {
            name: "default-closeup".into(),
            bytes: closeup,
        },
        Portrait {
            name: "hopper".into(),
            bytes: read(&models_dir().join("portraits/grace_hopper.jpg"))?,
        },
    ])
}

/// The review portraits in `dir` (JPEG and PNG files), sorted by name; none if the folder does not exist.
pub fn in_folder(dir: &Path) -> anyhow::Result<Vec<Portrait>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let ext = path
            .extension()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ["jpg", "jpeg", "png"].contains(&ext.as_str()) {
            out.push(Portrait {
                name: path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("portrait")
                    .to_string(),
                bytes: read(&path)?,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A small upload made from `portrait`: scaled down so its long side is `long_side` pixels (aspect kept), as a
/// PNG, named `<name>-<long_side>`.
pub fn downscaled(portrait: &Portrait, long_side: u32) -> anyhow::Result<Portrait> {
    let img = decode_portrait(&portrait.bytes, long_side)
        .with_context(|| format!("decoding portrait {}", portrait.name))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .context("encoding the small portrait")?;
    Ok(Portrait {
        name: format!("{}-{long_side}", portrait.name),
        bytes: out.into_inner(),
    })
}

/// The default portrait cropped to a square around the face (1.5 face heights), as a 512x512 PNG.
fn closeup(models: &mut FaceModels, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let img = decode_portrait(bytes, 4096).context("decoding the default portrait")?;
    let p = models
        .prepare_image(img.clone())
        .context("preparing the default portrait")?;
    let crop = face_square(&img, &p, 1.5);
    let crop = image::imageops::resize(&crop, 512, 512, FilterType::CatmullRom);
    let mut out = std::io::Cursor::new(Vec::new());
    crop.write_to(&mut out, image::ImageFormat::Png)
        .context("encoding the close-up")?;
    Ok(out.into_inner())
}

/// A square crop of `img` centred on the prepared face (on its mouth when `scale` is under one), `scale` face
/// heights on a side (clamped to the image).
pub fn face_square(img: &RgbImage, p: &PreparedPortrait, scale: f32) -> RgbImage {
    let (fh, lm) = (p.rig.face_height, &p.landmarks);
    let (cx, cy) = if scale < 1.0 {
        (p.rig.mouth.origin[0], p.rig.mouth.origin[1])
    } else {
        (
            (lm[10][0] + lm[152][0]) / 2.0,
            (lm[10][1] + lm[152][1]) / 2.0,
        )
    };
    let side = (scale * fh)
        .min(img.width() as f32)
        .min(img.height() as f32)
        .max(2.0) as u32;
    let x0 = (cx - side as f32 / 2.0)
        .clamp(0.0, (img.width() - side) as f32)
        .round() as u32;
    let y0 = (cy - side as f32 / 2.0)
        .clamp(0.0, (img.height() - side) as f32)
        .round() as u32;
    image::imageops::crop_imm(img, x0, y0, side, side).to_image()
}

/// Prepares a portrait as the worker does (long side capped at `max_long_side`).
pub fn prepare(
    models: &mut FaceModels,
    portrait: &Portrait,
    max_long_side: u32,
) -> anyhow::Result<PreparedPortrait> {
    models
        .prepare(&portrait.bytes, &PrepareOptions { max_long_side })
        .with_context(|| format!("preparing portrait {}", portrait.name))
}
