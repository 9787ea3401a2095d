//! Portrait preparation, once per session: decode, cap the working resolution, find the face, fit the mesh,
//! extract the contours the renderer moves and build its warp rig.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage, imageops::FilterType};

use super::{
    face::{Detection, FaceModels, PRESENCE_THRESHOLD},
    landmarks as lm,
    rig::WarpRig,
};

/// Why a portrait cannot be used. `NoFaceDetected` and `Decode` are the caller's fault (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("No face detected")]
    NoFaceDetected,
    #[error("could not decode the portrait image: {0}")]
    Decode(String),
    /// A face was found but cannot be animated well (too small for the output, turned away); the sentence says
    /// why.
    #[error("{0}")]
    Unusable(String),
    #[error("face models: {0}")]
    Model(String),
}

/// Smallest distance between the eye centres in the output, pixels: below it the mouth is a few pixels wide
/// and its motion cannot be read.
pub const MIN_INTEROCULAR_PX: f32 = 24.0;

/// A second face at least this share of the main face's area makes the portrait ambiguous.
pub const RIVAL_FACE_AREA: f32 = 0.4;

/// Preparation settings.
#[derive(Debug, Clone, Copy)]
pub struct PrepareOptions {
    /// Long side of the working (= output) resolution; the aspect is kept and both sides are made even.
    pub max_long_side: u32,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self { max_long_side: 512 }
    }
}

/// Point lists in image pixels.
#[derive(Debug, Clone)]
pub struct FaceFeatures {
    pub lips_outer: Vec<[f32; 2]>,
    pub lips_inner: Vec<[f32; 2]>,
    pub jaw: Vec<[f32; 2]>,
    pub right_eye: Vec<[f32; 2]>,
    pub left_eye: Vec<[f32; 2]>,
}

/// A portrait ready to render.
#[derive(Debug, Clone)]
pub struct PreparedPortrait {
    /// Working image (even width and height, long side <= `max_long_side`).
    pub image: RgbImage,
    pub detection: Detection,
    /// 468 mesh points in working-image pixels (z in the same scale, relative).
    pub landmarks: Vec<[f32; 3]>,
    /// Mesh face-presence score in [0, 1].
    pub presence: f32,
    pub features: FaceFeatures,
    /// Warp fields on a coarse grid, built from the landmarks.
    pub rig: WarpRig,
}

impl PreparedPortrait {
    pub fn width(&self) -> u32 {
        self.image.width()
    }
    pub fn height(&self) -> u32 {
        self.image.height()
    }
}

/// Largest accepted input dimension (either side), pixels.
const MAX_INPUT_SIDE: u32 = 12_000;

/// Decodes JPEG/PNG/WebP bytes (EXIF orientation applied) and scales to the working resolution: long side at
/// most `max_long_side`, aspect kept, both sides even (at least 2).
pub fn decode_portrait(bytes: &[u8], max_long_side: u32) -> Result<RgbImage, PrepareError> {
    let dec = |e: image::ImageError| PrepareError::Decode(e.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PrepareError::Decode(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_INPUT_SIDE);
    limits.max_image_height = Some(MAX_INPUT_SIDE);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(dec)?;
    let orientation = decoder.orientation().map_err(dec)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(dec)?;
    img.apply_orientation(orientation);
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    if w < 16 || h < 16 {
        return Err(PrepareError::Decode(format!(
            "image is only {w}x{h} pixels"
        )));
    }
    let cap = max_long_side.max(16) & !1;
    let scale = (cap as f32 / w.max(h) as f32).min(1.0);
    let even = |v: u32| ((((v as f32) * scale).round() as u32) & !1).max(2);
    let (nw, nh) = (even(w), even(h));
    if (nw, nh) == (w, h) {
        return Ok(rgb);
    }
    Ok(image::imageops::resize(
        &rgb,
        nw,
        nh,
        FilterType::CatmullRom,
    ))
}

impl FaceModels {
    /// Full preparation of encoded image bytes.
    pub fn prepare(
        &mut self,
        bytes: &[u8],
        opts: &PrepareOptions,
    ) -> Result<PreparedPortrait, PrepareError> {
        let image = decode_portrait(bytes, opts.max_long_side)?;
        self.prepare_image(image)
    }

    /// Preparation of an already decoded working image (used as is: callers cap and even it).
    pub fn prepare_image(&mut self, image: RgbImage) -> Result<PreparedPortrait, PrepareError> {
        let faces = self.detect_all(&image)?;
        let detection = *faces.first().ok_or(PrepareError::NoFaceDetected)?;
        // Another face nearly as large: which one speaks is anybody's guess (a small face in the background is
        // fine).
        let area = |d: &Detection| d.w * d.h;
        let rivals = faces[1..]
            .iter()
            .filter(|d| area(d) >= RIVAL_FACE_AREA * area(&detection))
            .count();
        if rivals > 0 {
            return Err(PrepareError::Unusable(format!(
                "the portrait shows {} faces of similar size: crop it to the one person who should speak",
                rivals + 1
            )));
        }
        // First crop from the detection, turned so the eyes are level; then one refinement from the mesh's own
        // extent (MediaPipe's landmarks-to-ROI step, scale 1.5).
        let [re, le] = [detection.keypoints[0], detection.keypoints[1]];
        let angle = (le[1] - re[1]).atan2(le[0] - re[0]);
        let side = detection.w.max(detection.h) * 1.5;
        let mut mesh = self.mesh(&image, detection.cx, detection.cy, side, angle)?;
        if mesh.presence < PRESENCE_THRESHOLD {
            return Err(PrepareError::NoFaceDetected);
        }
        let refined = self.mesh_from_points(&image, &mesh.points)?;
        if refined.presence >= PRESENCE_THRESHOLD {
            mesh = refined;
        }
        let p2 = |ids: &[usize]| {
            ids.iter()
                .map(|&i| [mesh.points[i][0], mesh.points[i][1]])
                .collect::<Vec<_>>()
        };
        let features = FaceFeatures {
            lips_outer: p2(&lm::LIPS_OUTER),
            lips_inner: p2(&lm::LIPS_INNER),
            jaw: p2(&lm::JAW),
            right_eye: p2(&[
                lm::RIGHT_EYE_UPPER.as_slice(),
                lm::RIGHT_EYE_LOWER.as_slice(),
            ]
            .concat()),
            left_eye: p2(&[lm::LEFT_EYE_UPPER.as_slice(), lm::LEFT_EYE_LOWER.as_slice()].concat()),
        };
        let rig = WarpRig::build(&image, &mesh.points);
        if rig.interocular < MIN_INTEROCULAR_PX {
            return Err(PrepareError::Unusable(format!(
                "the face is too small to animate: its eyes are {:.0} pixels apart in the {}x{} output, at least {MIN_INTEROCULAR_PX:.0} are needed (use a closer crop or a larger image)",
                rig.interocular,
                image.width(),
                image.height()
            )));
        }
        // A face turned far to one side: one eye much closer to the nose than the other.
        let p = |i: usize| [mesh.points[i][0], mesh.points[i][1]];
        let dist =
            |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let (r, l) = (dist(p(1), p(33)), dist(p(1), p(263)));
        if r.min(l) < 0.35 * r.max(l) {
            return Err(PrepareError::Unusable(
                "the face is turned too far to one side to animate: use a portrait that looks towards the camera"
                    .into(),
            ));
        }
        Ok(PreparedPortrait {
            image,
            detection,
            presence: mesh.presence,
            landmarks: mesh.points,
            features,
            rig,
        })
    }
}
