//! The life of a session as the API sees it: admission, stop, the end, and waiting for the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::broadcast;

use crate::http::error::ApiError;
use crate::portrait::Portrait;
use crate::store::{Admission, NewTask, Status, StoreError, Task, TaskStore};

/// A validated launch; the LiveKit token lives only here and in the worker, never in the store.
pub struct Launch {
    pub livekit_url: String,
    pub livekit_token: String,
    pub room_name: String,
    pub identity: String,
    pub portrait: Option<Portrait>,
    pub avatar_id: Option<String>,
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub mode: Option<String>,
}

#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: TaskStore,
    max_sessions: u32,
    ended: broadcast::Sender<Task>,
    model_ready: AtomicBool,
    shutting_down: AtomicBool,
}

/// 12 lowercase hex characters.
fn new_task_id() -> String {
    let n: u64 = rand::rng().random();
    format!("{:012x}", n & 0xffff_ffff_ffff)
}

impl Sessions {
    pub fn new(store: TaskStore, max_sessions: u32) -> Self {
        let (ended, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                store,
                max_sessions,
                ended,
                model_ready: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    pub fn store(&self) -> &TaskStore {
        &self.inner.store
    }

    pub async fn active_count(&self) -> Result<u32, StoreError> {
        self.inner.store.active_count().await
    }

    /// True once a worker has loaded and verified the model pack since start-up.
    pub fn model_ready(&self) -> bool {
        self.inner.model_ready.load(Ordering::Acquire)
    }

    pub fn shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    /// Admit a launch: returns the new task, or the active task of the same room and identity.
    pub async fn launch(&self, launch: Launch) -> Result<Task, ApiError> {
        let new = NewTask {
            task_id: new_task_id(),
            room_name: launch.room_name,
            identity: launch.identity,
            model: launch.model,
            mode: launch.mode,
            prompt: launch.prompt,
            avatar_id: launch.avatar_id,
        };
        match self.inner.store.admit(new, self.inner.max_sessions).await? {
            Admission::Created(task) => {
                tracing::info!(task_id = %task.task_id, room = %task.room_name, "task admitted");
                Ok(task)
            }
            Admission::Existing(task) => {
                tracing::info!(task_id = %task.task_id, room = %task.room_name, "repeated launch: returning the active task");
                Ok(task)
            }
            Admission::AtCapacity { active } => {
                Err(ApiError::at_capacity(active, self.inner.max_sessions))
            }
        }
    }

    /// Stop a session (`cancelled`). `None` for an unknown id; a task that already ended is returned as is.
    pub async fn stop(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        if let Some(task) = self
            .finish(task_id, Status::Cancelled, "stopped", None)
            .await?
        {
            return Ok(Some(task));
        }
        self.inner.store.get(task_id).await
    }

    /// End an active task; the first ending wins. Announces the end to waiters.
    pub async fn finish(
        &self,
        task_id: &str,
        status: Status,
        reason: &str,
        error: Option<&str>,
    ) -> Result<Option<Task>, StoreError> {
        let ended = self
            .inner
            .store
            .finish(task_id, status, reason, error)
            .await?;
        if let Some(task) = &ended {
            tracing::info!(
                task_id,
                status = status.as_str(),
                reason,
                error,
                "task ended"
            );
            let _ = self.inner.ended.send(task.clone());
        }
        Ok(ended)
    }

    /// Wait until the task is terminal, at most `limit`. `None` if it is unknown.
    pub async fn wait_ended(
        &self,
        task_id: &str,
        limit: Duration,
    ) -> Result<Option<Task>, StoreError> {
        let mut ended = self.inner.ended.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.inner.store.get(task_id).await? {
                Some(task) if !task.status.is_terminal() => {}
                other => return Ok(other),
            }
            // Wait for any ending (or a lag), then look again.
            loop {
                match tokio::time::timeout_at(deadline, ended.recv()).await {
                    Err(_) => return self.inner.store.get(task_id).await,
                    Ok(Ok(task)) if task.task_id != task_id => continue,
                    Ok(Ok(task)) => return Ok(Some(task)),
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return self.inner.store.get(task_id).await;
                    }
                }
            }
        }
    }

    /// End every active task, e.g. those a previous run left behind, with `reason`.
    pub async fn fail_all_active(&self, reason: &str, error: &str) -> Result<usize, StoreError> {
        let active = self.inner.store.active().await?;
        for task in &active {
            self.finish(&task.task_id, Status::Failed, reason, Some(error))
                .await?;
        }
        Ok(active.len())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn task_ids_are_12_hex() {
        for _ in 0..100 {
            let id = super::new_task_id();
            assert_eq!(id.len(), 12);
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }
}
