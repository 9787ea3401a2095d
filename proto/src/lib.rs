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

/// gRPC metadata key of a StartSession or CheckPortrait refusal that is the caller's fault (`no_face`,
/// `invalid_image`, `unusable_portrait`).
pub const ERROR_CODE_KEY: &str = "lipcast-error";

/// The `Ended.reason` codes a worker sends.
pub mod end_reason {
    pub const AGENT_LEFT: &str = "agent_left";
    pub const REMOVED: &str = "removed";
    pub const ROOM_CLOSED: &str = "room_closed";
    pub const DISCONNECTED: &str = "disconnected";
    pub const IDLE: &str = "idle";
    pub const MAX_DURATION: &str = "max_duration";
    pub const STOPPED: &str = "stopped";
    pub const AGENT_TIMEOUT: &str = "agent_timeout";
    pub const ERROR: &str = "error";
}
