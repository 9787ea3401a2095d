//! The SQLite task store (sqlx, WAL): the durable journal of the sessions, one row each (admission, pending ->
//! running, the end), which survives restarts. Which sessions are live, and capacity, are the registry's
//! (`sessions::registry`).

mod task;
mod workers;

pub use task::{EndReason, Status, Task};
pub use workers::WorkerRow;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::clock;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("task store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("task store: creating {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// What a launch asks to record.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub task_id: String,
    pub room_name: String,
    pub identity: String,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub prompt: Option<String>,
    pub avatar_id: Option<String>,
    /// sha256 (hex) of the portrait; `None` for the shipped default.
    pub portrait_sha256: Option<String>,
}

#[derive(Clone)]
pub struct TaskStore {
    pool: SqlitePool,
}

const COLUMNS: &str = "task_id, room_name, identity, status, created_at, started_at, completed_at, error, \
                       end_reason, model, mode, prompt, avatar_id, first_frame_ms, worker_pid, worker_start, stats, \
                       portrait_sha256";

impl TaskStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Journals a new pending task (admitted by the registry) and returns its record.
    pub async fn insert(&self, new: NewTask) -> Result<Task, StoreError> {
        sqlx::query(
            "INSERT INTO tasks (task_id, room_name, identity, status, created_at, model, mode, prompt, avatar_id, \
             portrait_sha256) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.task_id)
        .bind(&new.room_name)
        .bind(&new.identity)
        .bind(clock::now())
        .bind(&new.model)
        .bind(&new.mode)
        .bind(&new.prompt)
        .bind(&new.avatar_id)
        .bind(&new.portrait_sha256)
        .execute(&self.pool)
        .await?;
        Ok(self
            .get(&new.task_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?)
    }

    pub async fn get(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        Ok(
            sqlx::query_as::<_, Task>(&format!("SELECT {COLUMNS} FROM tasks WHERE task_id = ?"))
                .bind(task_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// All tasks, newest first.
    pub async fn list(&self) -> Result<Vec<Task>, StoreError> {
        Ok(
            sqlx::query_as::<_, Task>(&format!("SELECT {COLUMNS} FROM tasks ORDER BY seq DESC"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Tasks that are pending or running, oldest first.
    pub async fn active(&self) -> Result<Vec<Task>, StoreError> {
        Ok(sqlx::query_as::<_, Task>(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE status IN ('pending', 'running') ORDER BY seq"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// pending -> running, at the worker's first published frame.
    pub async fn mark_running(
        &self,
        task_id: &str,
        first_frame_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET status = 'running', started_at = ?, first_frame_ms = ? \
             WHERE task_id = ? AND status = 'pending'",
        )
        .bind(clock::now())
        .bind(first_frame_ms)
        .bind(task_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Remember which process serves the task (pid and its start time, to recognise it after a crash).
    pub async fn set_worker(
        &self,
        task_id: &str,
        pid: u32,
        start_time: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tasks SET worker_pid = ?, worker_start = ? WHERE task_id = ?")
            .bind(pid)
            .bind(i64::try_from(start_time).unwrap_or(i64::MAX))
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Move an active task to the terminal status its end gives. Returns the updated task, or `None` when the
    /// task does not exist or had already ended (the first ending wins).
    pub async fn finish(
        &self,
        task_id: &str,
        reason: EndReason,
        error: Option<&str>,
    ) -> Result<Option<Task>, StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET status = ?, completed_at = ?, end_reason = ?, error = ? \
             WHERE task_id = ? AND status IN ('pending', 'running')",
        )
        .bind(reason.status())
        .bind(clock::now())
        .bind(reason)
        .bind(error)
        .bind(task_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get(task_id).await
    }

    /// Store a session's figures (JSON) with its task.
    pub async fn set_stats(
        &self,
        task_id: &str,
        stats: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tasks SET stats = ? WHERE task_id = ?")
            .bind(stats.to_string())
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget a task that never started (its launch failed before a worker took it).
    pub async fn discard(&self, task_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM tasks WHERE task_id = ? AND status = 'pending' AND started_at IS NULL",
        )
        .bind(task_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drop terminal tasks older than `retention` and beyond the newest `max_history`.
    pub async fn prune(&self, retention: Duration, max_history: u32) -> Result<u64, StoreError> {
        let cutoff = clock::ago(retention);
        let by_age = sqlx::query(
            "DELETE FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND completed_at < ?",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let by_count = sqlx::query(
            "DELETE FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND seq NOT IN \
             (SELECT seq FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') \
              ORDER BY seq DESC LIMIT ?)",
        )
        .bind(max_history)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(by_age + by_count)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
