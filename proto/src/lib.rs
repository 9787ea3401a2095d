//! The supervisor <-> worker contract (see `worker.proto`): generated tonic/prost types plus the contract
//! version both sides check.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod generated {
    tonic::include_proto!("lipcast.worker.v1");
}

pub use generated::*;

/// Bumped on any incompatible change to `worker.proto`. Carried by every `Health` call and reply; a
/// supervisor and a worker of different versions refuse each other.
pub const CONTRACT_VERSION: u32 = 3;

/// gRPC metadata key of a StartSession or CheckPortrait refusal that is the caller's fault; its value is a
/// [`PortraitRefusal`] name (`PORTRAIT_REFUSAL_NO_FACE`, ...).
pub const ERROR_CODE_KEY: &str = "lipcast-error";

impl Device {
    /// The setting's and the log's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Device::Auto => "auto",
            Device::Cuda => "cuda",
            Device::Cpu => "cpu",
        }
    }
}

impl VideoCodec {
    /// The setting's and the log's word for it.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Vp8 => "vp8",
        }
    }
}
