//! Face facts the end-to-end tests share, found with the worker's own face models.

use lipcast_e2e::paths;

/// Where the mouth is on the shipped portrait, in normalised coordinates (found with the worker's own face
/// models, so the test follows the portrait, not a hard-coded box).
pub fn mouth_center() -> (f64, f64) {
    use lipcast_worker::avatar::{FaceModels, PrepareOptions};
    use lipcast_worker::model::{Device, ModelPack, Runtime, RuntimeConfig};
    let runtime = Runtime::new(RuntimeConfig {
        device: Device::Cpu,
        intra_threads: 1,
    })
    .unwrap_or_else(|e| panic!("ONNX Runtime: {e}"));
    let pack = ModelPack::load(&paths::workspace().join("models/builtin"))
        .unwrap_or_else(|e| panic!("pack: {e}"));
    let mut face = FaceModels::load(&runtime, &pack).unwrap_or_else(|e| panic!("face models: {e}"));
    let p = face
        .prepare(&paths::default_portrait(), &PrepareOptions::default())
        .unwrap_or_else(|e| panic!("default portrait: {e}"));
    let (a, b) = (p.landmarks[13], p.landmarks[14]);
    (
        f64::from((a[0] + b[0]) / 2.0) / f64::from(p.width()),
        f64::from((a[1] + b[1]) / 2.0) / f64::from(p.height()),
    )
}
