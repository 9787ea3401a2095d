//! Research and review tools for lipcast; nothing here ships in the server.
//!
//! - [`frames`]: lip sync measured on rendered frames: the held-out voice through the real front end and
//!   renderer, a face tracker on every frame, figures of the inner-lip gap against the audio.
//! - [`sheet`]: contact sheets of speech frames for `docs/`.
//! - [`interior`]: makes the photographed mouth interior the renderer composites into closed mouths.
#![forbid(unsafe_code)]

pub mod frames;
pub mod interior;
pub mod portraits;
pub mod sheet;
