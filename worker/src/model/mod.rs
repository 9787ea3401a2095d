//! Inference runtime (ONNX Runtime) and model packs.

pub mod pack;
pub mod runtime;

pub use pack::{FileRole, ModelPack, PackError};
pub use runtime::{ActiveDevice, Device, LoadedSession, Runtime, RuntimeConfig, RuntimeError};
