//! lipcast-worker: one process per avatar session.
//!
//! Modules, each with one responsibility:
//! - `livekit`: a safe wrapper over LiveKit's engine (`liblivekit_ffi.so`), loaded at run time.
//! - `model`: ONNX Runtime sessions and model packs.
//! - `avatar`: portrait preparation and the renderer.
//! - `audio`: PCM ingest, resampling, features, audio -> mouth.
//! - `eval`: the lip-sync report (`lipcast-worker eval`).

pub mod audio;
pub mod avatar;
pub mod eval;
pub mod livekit;
pub mod model;
pub mod vendor;
