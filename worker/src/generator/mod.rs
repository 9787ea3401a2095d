//! Bring-your-own neural generators (`renderer = "generator"` packs, the plug-in contract of `docs/models.md`):
//! the worker keeps detection, crop, batching, pacing and publishing; the pack's `generate.onnx` turns audio
//! windows and face crops into face crops.
//!
//! - [`crop`]: the face box, the face input tensor, the feathered paste-back.
//! - [`feature`]: the audio feature (built-in mel80 or the pack's `audio.onnx`), windowed per video frame.
//! - [`model`]: `generate.onnx`, `audio.onnx` and `prepare.onnx` on ONNX Runtime, names checked against the
//!   manifest.
//! - [`animator`]: [`GeneratorAnimator`], batches rendered ahead of the audio clock on a thread of their own.

pub mod animator;
pub mod crop;
pub mod feature;
pub mod model;

pub use animator::GeneratorAnimator;
pub use model::{AudioModel, GenerateError, GenerateModel, PrepareModel};
