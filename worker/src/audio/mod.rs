//! Audio: resampling the agent's speech, synthetic speech for benchmarks, and front ends that turn 16 kHz PCM
//! into mouth parameters at 25 fps.

pub mod dsp;
pub mod frontend;
pub mod mel80;
pub mod network;
mod pcm;
pub mod resample;
pub mod select;
pub mod synth;

pub use dsp::DspFrontend;
pub use frontend::{MouthFrontend, MouthParams, SAMPLE_RATE, SAMPLES_PER_FRAME};
pub use network::NetworkFrontend;
pub use select::{FrontendError, FrontendKind, build_frontend};
