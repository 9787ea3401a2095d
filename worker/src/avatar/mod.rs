//! Portrait preparation (face detection, mesh, warp rig) and the renderer.

pub mod face;
pub mod frame;
pub mod idle;
pub mod interior;
pub mod landmarks;
pub mod prepare;
pub mod render;
pub mod rig;
pub mod sample;

pub use face::{Detection, FaceModels};
pub use frame::Frame;
pub use prepare::{PrepareError, PrepareOptions, PreparedPortrait, decode_portrait};
pub use render::Renderer;
