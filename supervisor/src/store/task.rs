//! A task record and its status.

use serde::Serialize;
use utoipa::ToSchema;

/// Where a session is in its life: `pending` (admitted, joining), `running`, then one of the three ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
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

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
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
    /// Why the session ended (e.g. `stopped`, `idle`, `worker_exited`).
    #[schema(required = true)]
    pub end_reason: Option<String>,
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
        let status: String = row.try_get("status")?;
        Ok(Task {
            task_id: row.try_get("task_id")?,
            room_name: row.try_get("room_name")?,
            identity: row.try_get("identity")?,
            status: Status::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "status".into(),
                source: format!("unknown status {status:?}").into(),
            })?,
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
