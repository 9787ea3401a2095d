//! Bring-your-own neural generators (`renderer = "generator"` packs, the plug-in contract of `docs/models.md`):
//! the worker keeps detection, crop, batching, pacing and publishing; the pack's `generate.onnx` turns audio
//! windows and face crops into face crops.
//!
//! - [`crop`]: the face box, the face input tensor, the feathered paste-back.
//! - [`model`]: `generate.onnx` on ONNX Runtime, its names checked against the manifest.
//! - [`animator`]: [`GeneratorAnimator`], batches rendered ahead of the audio clock on a thread of their own.

pub mod animator;
pub mod crop;
pub mod model;

pub use animator::GeneratorAnimator;
pub use model::{GenerateError, GenerateModel};
