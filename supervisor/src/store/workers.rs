//! The `workers` table: processes started and not yet reaped, so orphans can be found after a crash.

use super::{StoreError, TaskStore};
use crate::clock;

/// One recorded worker process.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkerRow {
    pub pid: i64,
    pub start_time: i64,
    pub socket: String,
    pub task_id: Option<String>,
}

impl TaskStore {
    pub async fn add_worker(
        &self,
        pid: u32,
        start_time: u64,
        socket: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO workers (pid, start_time, socket, spawned_at) VALUES (?, ?, ?, ?)",
        )
        .bind(pid)
        .bind(i64::try_from(start_time).unwrap_or(i64::MAX))
        .bind(socket)
        .bind(clock::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_worker_task(
        &self,
        pid: u32,
        start_time: u64,
        task_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE workers SET task_id = ? WHERE pid = ? AND start_time = ?")
            .bind(task_id)
            .bind(pid)
            .bind(i64::try_from(start_time).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_worker(&self, pid: u32, start_time: u64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workers WHERE pid = ? AND start_time = ?")
            .bind(pid)
            .bind(i64::try_from(start_time).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, WorkerRow>("SELECT pid, start_time, socket, task_id FROM workers")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn clear_workers(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workers")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
