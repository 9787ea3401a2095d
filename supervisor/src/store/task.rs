//! A task record, its status and why it ended.

use serde::Serialize;
use utoipa::ToSchema;

/// Where a session is in its life: `pending` (admitted, joining), `running`, then one of the three ends.
/// Stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// Why a session ended: what its worker said, or what the supervisor saw. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum EndReason {
    /// The agent the avatar served left the room.
    AgentLeft,
    /// The avatar was removed from the room.
    Removed,
    RoomClosed,
    /// Any other disconnection from the room.
    Disconnected,
    /// No agent audio for `SESSION_IDLE_TIMEOUT`.
    Idle,
    /// `MAX_SESSION_SECONDS` reached.
    MaxDuration,
    /// `POST /tasks/{id}/stop`.
    Stopped,
    /// The served agent never came.
    AgentTimeout,
    /// The session failed; the task's `error` says how.
    Error,
    /// The worker process ended without saying why the session ended.
    WorkerExited,
    SupervisorShutdown,
    /// Left active by a supervisor that is gone: found at start-up.
    SupervisorRestarted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::AgentLeft => "agent_left",
            EndReason::Removed => "removed",
            EndReason::RoomClosed => "room_closed",
            EndReason::Disconnected => "disconnected",
            EndReason::Idle => "idle",
            EndReason::MaxDuration => "max_duration",
            EndReason::Stopped => "stopped",
            EndReason::AgentTimeout => "agent_timeout",
            EndReason::Error => "error",
            EndReason::WorkerExited => "worker_exited",
            EndReason::SupervisorShutdown => "supervisor_shutdown",
            EndReason::SupervisorRestarted => "supervisor_restarted",
        }
    }

    /// The task status an end gives: a normal end completes, a stop cancels, anything else failed.
    pub fn status(self) -> Status {
        match self {
            EndReason::AgentLeft
            | EndReason::Removed
            | EndReason::RoomClosed
            | EndReason::Idle
            | EndReason::MaxDuration => Status::Completed,
            EndReason::Stopped => Status::Cancelled,
            EndReason::Disconnected
            | EndReason::AgentTimeout
            | EndReason::Error
            | EndReason::WorkerExited
            | EndReason::SupervisorShutdown
            | EndReason::SupervisorRestarted => Status::Failed,
        }
    }
}

impl From<lipcast_proto::EndReason> for EndReason {
    fn from(r: lipcast_proto::EndReason) -> Self {
        use lipcast_proto::EndReason as W;
        match r {
            W::AgentLeft => EndReason::AgentLeft,
            W::Removed => EndReason::Removed,
            W::RoomClosed => EndReason::RoomClosed,
            W::Disconnected => EndReason::Disconnected,
            W::Idle => EndReason::Idle,
            W::MaxDuration => EndReason::MaxDuration,
            W::Stopped => EndReason::Stopped,
            W::AgentTimeout => EndReason::AgentTimeout,
            W::Error | W::Unspecified => EndReason::Error,
        }
    }
}

/// One session as stored and as shown by `/tasks` (the seed's six fields first; never a token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Task {
    /// 12 characters, unique.
    pub task_id: String,
    pub room_name: String,
    pub status: Status,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When the session ended (RFC 3339, UTC); null while it is active.
    #[schema(required = true)]
    pub completed_at: Option<String>,
    /// Why a `failed` session failed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// When the worker published the first frame (RFC 3339, UTC).
    #[schema(required = true)]
    pub started_at: Option<String>,
    /// Why the session ended.
    #[schema(required = true)]
    pub end_reason: Option<EndReason>,
    /// Milliseconds from the launch to the first published frame.
    #[schema(required = true)]
    pub first_frame_ms: Option<i64>,
    #[schema(required = true)]
    pub model: Option<String>,
    #[schema(required = true)]
    pub avatar_id: Option<String>,
    /// The session's figures: live while it runs, stored when it ends.
    #[schema(required = true, value_type = Option<Object>)]
    pub stats: Option<serde_json::Value>,
    #[serde(skip)]
    pub identity: String,
    #[serde(skip)]
    pub mode: Option<String>,
    #[serde(skip)]
    pub prompt: Option<String>,
    #[serde(skip)]
    pub worker_pid: Option<i64>,
    #[serde(skip)]
    pub worker_start: Option<i64>,
    /// sha256 (hex) of its portrait; `None` for the shipped default (tells a replay from another launch).
    #[serde(skip)]
    pub portrait_sha256: Option<String>,
}

impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for Task {
    fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Task {
            task_id: row.try_get("task_id")?,
            room_name: row.try_get("room_name")?,
            identity: row.try_get("identity")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            completed_at: row.try_get("completed_at")?,
            error: row.try_get("error")?,
            end_reason: row.try_get("end_reason")?,
            model: row.try_get("model")?,
            mode: row.try_get("mode")?,
            prompt: row.try_get("prompt")?,
            avatar_id: row.try_get("avatar_id")?,
            first_frame_ms: row.try_get("first_frame_ms")?,
            worker_pid: row.try_get("worker_pid")?,
            worker_start: row.try_get("worker_start")?,
            stats: row
                .try_get::<Option<String>, _>("stats")?
                .and_then(|s| serde_json::from_str(&s).ok()),
            portrait_sha256: row.try_get("portrait_sha256")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lipcast_proto::EndReason as W;

    #[test]
    fn worker_reasons_map_to_statuses() {
        let status = |w: W| EndReason::from(w).status();
        assert_eq!(status(W::AgentLeft), Status::Completed);
        assert_eq!(status(W::Idle), Status::Completed);
        assert_eq!(status(W::Stopped), Status::Cancelled);
        assert_eq!(status(W::Disconnected), Status::Failed);
        assert_eq!(status(W::Unspecified), Status::Failed);
        assert_eq!(EndReason::from(W::AgentTimeout).as_str(), "agent_timeout");
        assert_eq!(EndReason::WorkerExited.status(), Status::Failed);
    }

    #[test]
    fn stored_names_are_the_api_names() {
        for r in [
            EndReason::AgentLeft,
            EndReason::SupervisorRestarted,
            EndReason::MaxDuration,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(
            serde_json::to_value(Status::Cancelled).unwrap(),
            Status::Cancelled.as_str()
        );
    }
}
