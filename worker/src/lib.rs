//! lipcast-worker: one process per avatar session.
//!
//! Modules, each with one responsibility:
//! - `control`: the gRPC server the supervisor drives (prepare, start, stop, events, benchmark).
//! - `session`: one session: the room, the real-time loop (the protocol's runner).
//! - `protocol`: the LiveKit agents avatar protocol (the served agent, its speech, its RPCs), over
//!   `lipcast-livekit`, the crate that wraps LiveKit's engine.
//! - `animation`: how a pack animates a portrait (the `Animator` and `Animation` seams; warp, generator).
//! - `model`: ONNX Runtime sessions and model packs.
//! - `avatar`: portrait preparation and the renderer.
//! - `generator`: bring-your-own neural generator packs (crop, model calls, paste-back, their animator).
//! - `audio`: resampling, synthetic speech, audio -> mouth front ends.
//!
//! The lip-sync report on the held-out voice is research code and lives in `lipcast-tools` (`lipcast-eval`).

pub mod animation;
pub mod audio;
pub mod avatar;
pub mod control;
pub mod generator;
pub mod model;
pub mod procstat;
pub mod protocol;
pub mod session;
pub mod vendor;
