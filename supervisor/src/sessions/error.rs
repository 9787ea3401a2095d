//! Why a launch did not start a session, in the supervisor's terms; `http::error` turns each into its answer.

use crate::store::StoreError;

/// Why a launch was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{active} of {max} sessions in use")]
    AtCapacity { active: u32, max: u32 },
    /// No prepared worker could take it in time (the pack loading, refused, or every worker busy).
    #[error("{0}")]
    NotReady(String),
    /// The worker refused the portrait: the caller's fault.
    #[error("{detail}")]
    PortraitRefused { refusal: Refusal, detail: String },
    /// A different launch for a room whose avatar already has the live session `task_id`.
    #[error("{detail}")]
    RoomBusy { task_id: String, detail: String },
    /// A failure of ours: `context` is for the caller, `cause` for the log.
    #[error("{context}: {cause}")]
    Internal {
        context: &'static str,
        cause: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which kind of portrait refusal (the answer's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoFace,
    InvalidImage,
}
