//! Face detection (BlazeFace short range) and the 468-point face mesh, on ONNX Runtime.

use image::{RgbImage, imageops::FilterType};
use ndarray::Array4;
use ort::{session::Session, value::TensorRef};

use crate::model::{FileRole, ModelPack, Runtime};

use super::PrepareError;

/// Minimum BlazeFace score (after the sigmoid) for a detection.
pub const DETECTION_THRESHOLD: f32 = 0.5;
/// Minimum face-presence score of the mesh.
pub const PRESENCE_THRESHOLD: f32 = 0.5;
/// Detections whose boxes overlap more than this (intersection over union) are the same face.
const SAME_FACE_IOU: f32 = 0.3;

/// Intersection over union of two detections' boxes.
fn overlap(a: &Detection, b: &Detection) -> f32 {
    let span = |c1: f32, s1: f32, c2: f32, s2: f32| {
        ((c1 + s1 / 2.0).min(c2 + s2 / 2.0) - (c1 - s1 / 2.0).max(c2 - s2 / 2.0)).max(0.0)
    };
    let inter = span(a.cx, a.w, b.cx, b.w) * span(a.cy, a.h, b.cy, b.h);
    let union = a.w * a.h + b.w * b.h - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// A face box in image pixels, with BlazeFace's six keypoints (right eye, left eye, nose, mouth, right ear,
/// left ear).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
    pub keypoints: [[f32; 2]; 6],
}

/// The mesh on one crop: 468 points in image pixels (z in the same scale) and the face-presence score.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub points: Vec<[f32; 3]>,
    pub presence: f32,
}

struct Io {
    input: String,
    outputs: [String; 2],
}

fn io_of(pack: &ModelPack, role: FileRole) -> Result<Io, PrepareError> {
    let f = pack
        .file(role)
        .map_err(|e| PrepareError::Model(e.to_string()))?;
    match (f.inputs.first(), f.outputs.as_slice()) {
        (Some(i), [a, b, ..]) => Ok(Io {
            input: i.name.clone(),
            outputs: [a.name.clone(), b.name.clone()],
        }),
        _ => Err(PrepareError::Model(format!(
            "manifest entry {role} must declare 1 input and 2 outputs"
        ))),
    }
}

fn check_names(session: &Session, io: &Io, role: &str) -> Result<(), PrepareError> {
    let has_in = session.inputs().iter().any(|i| i.name() == io.input);
    let has_out = io
        .outputs
        .iter()
        .all(|o| session.outputs().iter().any(|s| s.name() == o));
    if has_in && has_out {
        Ok(())
    } else {
        Err(PrepareError::Model(format!(
            "{role}: the ONNX file's tensor names differ from the manifest"
        )))
    }
}

/// BlazeFace + face mesh sessions, loaded from a pack.
pub struct FaceModels {
    detector: Session,
    mesh: Session,
    det_io: Io,
    mesh_io: Io,
    anchors: Vec<[f32; 2]>,
    /// Milliseconds it took to load both sessions.
    pub load_ms: f64,
}

fn ort_err(e: ort::Error) -> PrepareError {
    PrepareError::Model(e.to_string())
}

/// BlazeFace short-range anchors: stride 8 (16x16, 2 per cell) then stride 16 (8x8, 6 per cell), 896 in all.
fn anchors() -> Vec<[f32; 2]> {
    let mut v = Vec::with_capacity(896);
    for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
        for y in 0..grid {
            for x in 0..grid {
                for _ in 0..per_cell {
                    v.push([
                        (x as f32 + 0.5) / grid as f32,
                        (y as f32 + 0.5) / grid as f32,
                    ]);
                }
            }
        }
    }
    v
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-100.0, 100.0)).exp())
}

impl FaceModels {
    pub fn load(runtime: &Runtime, pack: &ModelPack) -> Result<Self, PrepareError> {
        let model = |e: crate::model::PackError| PrepareError::Model(e.to_string());
        let rt = |e: crate::model::RuntimeError| PrepareError::Model(e.to_string());
        let det = runtime
            .load(&pack.path(FileRole::FaceDetector).map_err(model)?)
            .map_err(rt)?;
        let mesh = runtime
            .load(&pack.path(FileRole::FaceMesh).map_err(model)?)
            .map_err(rt)?;
        let det_io = io_of(pack, FileRole::FaceDetector)?;
        let mesh_io = io_of(pack, FileRole::FaceMesh)?;
        check_names(&det.session, &det_io, "face_detector")?;
        check_names(&mesh.session, &mesh_io, "face_mesh")?;
        Ok(Self {
            detector: det.session,
            mesh: mesh.session,
            det_io,
            mesh_io,
            anchors: anchors(),
            load_ms: det.load_ms + mesh.load_ms,
        })
    }

    /// Best face in `img`, if its score reaches [`DETECTION_THRESHOLD`].
    pub fn detect(&mut self, img: &RgbImage) -> Result<Option<Detection>, PrepareError> {
        Ok(self.detect_all(img)?.into_iter().next())
    }

    /// Every face in `img` whose score reaches [`DETECTION_THRESHOLD`], best first; the anchors that found the
    /// same face are merged (non-maximum suppression).
    pub fn detect_all(&mut self, img: &RgbImage) -> Result<Vec<Detection>, PrepareError> {
        let (w, h) = (img.width() as f32, img.height() as f32);
        let side = w.max(h);
        let (ox, oy) = ((side - w) / 2.0, (side - h) / 2.0);
        // Letterbox to a square, then 128x128 in [-1, 1].
        let mut square = RgbImage::new(side as u32, side as u32);
        image::imageops::overlay(&mut square, img, ox as i64, oy as i64);
        let small = image::imageops::resize(&square, 128, 128, FilterType::Triangle);
        let x = Array4::from_shape_fn([1, 128, 128, 3], |(_, y, x, c)| {
            small.get_pixel(x as u32, y as u32)[c] as f32 / 127.5 - 1.0
        });
        let out = self
            .detector
            .run(ort::inputs![self.det_io.input.as_str() => TensorRef::from_array_view(x.view()).map_err(ort_err)?])
            .map_err(ort_err)?;
        let (_, reg) = out[self.det_io.outputs[0].as_str()]
            .try_extract_tensor::<f32>()
            .map_err(ort_err)?;
        let (_, cls) = out[self.det_io.outputs[1].as_str()]
            .try_extract_tensor::<f32>()
            .map_err(ort_err)?;
        if reg.len() < 896 * 16 || cls.len() < 896 {
            return Err(PrepareError::Model(
                "face detector output has the wrong size".into(),
            ));
        }
        let to_px = |u: f32, v: f32| [u * side - ox, v * side - oy];
        let mut found: Vec<Detection> = cls[..896]
            .iter()
            .enumerate()
            .map(|(i, &c)| (i, sigmoid(c)))
            .filter(|&(_, score)| score >= DETECTION_THRESHOLD)
            .map(|(i, score)| {
                let r = &reg[i * 16..i * 16 + 16];
                let a = self.anchors[i];
                let c = to_px(r[0] / 128.0 + a[0], r[1] / 128.0 + a[1]);
                let mut keypoints = [[0.0; 2]; 6];
                for (k, kp) in keypoints.iter_mut().enumerate() {
                    *kp = to_px(r[4 + 2 * k] / 128.0 + a[0], r[5 + 2 * k] / 128.0 + a[1]);
                }
                Detection {
                    cx: c[0],
                    cy: c[1],
                    w: r[2] / 128.0 * side,
                    h: r[3] / 128.0 * side,
                    score,
                    keypoints,
                }
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut faces: Vec<Detection> = Vec::new();
        for d in found {
            if faces.iter().all(|f| overlap(f, &d) < SAME_FACE_IOU) {
                faces.push(d);
            }
        }
        Ok(faces)
    }

    /// Runs the mesh on the crop that previous landmarks `points` give (MediaPipe's landmarks-to-ROI step): the
    /// points' extent in the face's own axes (eyes level), 1.5 times its larger side.
    pub fn mesh_from_points(
        &mut self,
        img: &RgbImage,
        points: &[[f32; 3]],
    ) -> Result<Mesh, PrepareError> {
        let (a, b) = (points[33], points[263]);
        let angle = (b[1] - a[1]).atan2(b[0] - a[0]);
        let (sin, cos) = angle.sin_cos();
        let (mut u0, mut v0, mut u1, mut v1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in points {
            let (u, v) = (cos * p[0] + sin * p[1], -sin * p[0] + cos * p[1]);
            u0 = u0.min(u);
            v0 = v0.min(v);
            u1 = u1.max(u);
            v1 = v1.max(v);
        }
        let (uc, vc) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
        let (cx, cy) = (cos * uc - sin * vc, sin * uc + cos * vc);
        self.mesh(img, cx, cy, (u1 - u0).max(v1 - v0) * 1.5, angle)
    }

    /// Runs the mesh on the square crop centred on (`cx`, `cy`) with side `side` (pixels), rotated by `angle`
    /// (radians, the face's roll: the crop is turned so that the eyes are level); pixels outside the image are
    /// black.
    pub fn mesh(
        &mut self,
        img: &RgbImage,
        cx: f32,
        cy: f32,
        side: f32,
        angle: f32,
    ) -> Result<Mesh, PrepareError> {
        const S: usize = 192;
        let scale = side / S as f32;
        let (sin, cos) = angle.sin_cos();
        let to_img = |u: f32, v: f32| [cx + cos * u - sin * v, cy + sin * u + cos * v];
        let mut x = Array4::<f32>::zeros([1, S, S, 3]);
        for yy in 0..S {
            for xx in 0..S {
                let q = to_img(
                    (xx as f32 + 0.5) * scale - side / 2.0,
                    (yy as f32 + 0.5) * scale - side / 2.0,
                );
                let px = super::sample::bilinear_rgb(img, q[0] - 0.5, q[1] - 0.5);
                for c in 0..3 {
                    x[[0, yy, xx, c]] = px[c] / 255.0;
                }
            }
        }
        let out = self
            .mesh
            .run(ort::inputs![self.mesh_io.input.as_str() => TensorRef::from_array_view(x.view()).map_err(ort_err)?])
            .map_err(ort_err)?;
        let (_, pts) = out[self.mesh_io.outputs[0].as_str()]
            .try_extract_tensor::<f32>()
            .map_err(ort_err)?;
        let (_, flag) = out[self.mesh_io.outputs[1].as_str()]
            .try_extract_tensor::<f32>()
            .map_err(ort_err)?;
        if pts.len() < 468 * 3 || flag.is_empty() {
            return Err(PrepareError::Model(
                "face mesh output has the wrong size".into(),
            ));
        }
        let points = pts[..468 * 3]
            .chunks_exact(3)
            .map(|p| {
                let q = to_img(p[0] * scale - side / 2.0, p[1] * scale - side / 2.0);
                [q[0], q[1], p[2] * scale]
            })
            .collect();
        Ok(Mesh {
            points,
            presence: sigmoid(flag[0]),
        })
    }
}
