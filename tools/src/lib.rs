//! Research and review tools for lipcast; nothing here ships in the server.
//!
//! - [`eval`]: the held-out voice (WAV reader, clips with their phones and targets) and the lip-sync report of
//!   the audio front ends on it (`lipcast-eval`).
//! - [`frames`]: lip sync measured on rendered frames: the held-out voice through the real front end and
//!   renderer, a face tracker on every frame, figures of the inner-lip gap against the audio.
//! - [`sheet`]: contact sheets of speech frames for `docs/`.
//! - [`interior`]: makes the photographed mouth interior the renderer composites into closed mouths.

pub mod eval;
pub mod frames;
pub mod interior;
pub mod portraits;
pub mod sheet;

use anyhow::Context;
use lipcast_worker::{
    avatar::FaceModels,
    model::{Device, ModelPack, Runtime, RuntimeConfig},
};

/// ONNX Runtime on one CPU thread, the built-in pack and its face models: what every tool renders and tracks
/// with.
pub fn load_models() -> anyhow::Result<(Runtime, ModelPack, FaceModels)> {
    let runtime = Runtime::new(RuntimeConfig {
        device: Device::Cpu,
        intra_threads: 1,
    })
    .context("starting ONNX Runtime (run scripts/setup.sh)")?;
    let pack = ModelPack::builtin().context("loading the built-in pack")?;
    let models = FaceModels::load(&runtime, &pack).context("loading the face models")?;
    Ok((runtime, pack, models))
}
