//! Audio front ends: 16 kHz PCM -> mouth parameters at 25 fps.

pub mod dsp;
pub mod frontend;
pub mod network;
pub mod resample;
pub mod select;

pub use dsp::DspFrontend;
pub use frontend::{MouthFrontend, MouthParams, SAMPLE_RATE, SAMPLES_PER_FRAME};
pub use network::NetworkFrontend;
pub use select::{FrontendError, FrontendKind, build_frontend};
