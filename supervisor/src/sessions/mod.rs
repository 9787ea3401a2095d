//! The life of a session as the API sees it: admission, handing it to a worker, stop, the end, and waiting
//! for the end. [`drive`] follows one running session's worker until it is over; [`repeat`] answers a launch
//! for a room whose avatar already has a live session; [`error`] says why a launch did not start one.

mod drive;
mod error;
mod figures;
pub mod registry;
mod repeat;

pub use error::{LaunchError, Refusal};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lipcast_proto::{ERROR_CODE_KEY, PortraitRefusal, SessionSettings, StartSessionRequest};
use rand::Rng;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pool::{Pool, Worker};
use crate::portrait::Portrait;
use crate::store::{Admission, EndReason, NewTask, StoreError, Task, TaskStore};

/// A validated launch; the LiveKit token lives only here and in the worker, never in the store.
pub struct Launch {
    pub livekit_url: String,
    pub livekit_token: String,
    pub room_name: String,
    pub identity: String,
    pub portrait: Option<Portrait>,
    /// sha256 of the portrait's URL or bytes; `None` for the shipped default. Same key, same portrait.
    pub portrait_key: Option<String>,
    pub avatar_id: Option<String>,
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub mode: Option<String>,
}

#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

/// A session handed to a worker.
struct Running {
    stop: CancellationToken,
    worker: Arc<Worker>,
    figures: figures::Figures,
}

struct Inner {
    store: TaskStore,
    config: Arc<Config>,
    pool: Pool,
    metrics: Metrics,
    ended: broadcast::Sender<Task>,
    shutting_down: AtomicBool,
    running: Mutex<HashMap<String, Running>>,
}

/// A worker's refusal of a portrait (INVALID_ARGUMENT): the caller's fault.
fn portrait_refused(status: &tonic::Status) -> LaunchError {
    let refusal = status
        .metadata()
        .get(ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(PortraitRefusal::from_str_name);
    let refusal = match refusal {
        Some(PortraitRefusal::NoFace) => Refusal::NoFace,
        _ => Refusal::InvalidImage,
    };
    let detail = status.message().to_owned();
    tracing::info!(%detail, "portrait refused");
    LaunchError::PortraitRefused { refusal, detail }
}

/// 12 lowercase hex characters.
fn new_task_id() -> String {
    let n: u64 = rand::rng().random();
    format!("{:012x}", n & 0xffff_ffff_ffff)
}

impl Sessions {
    pub fn new(store: TaskStore, config: Arc<Config>, pool: Pool, metrics: Metrics) -> Self {
        let (ended, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                pool,
                metrics,
                ended,
                shutting_down: AtomicBool::new(false),
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &TaskStore {
        &self.inner.store
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub async fn active_count(&self) -> Result<u32, StoreError> {
        let n = self.inner.store.active_count().await?;
        self.inner.metrics.sessions_active.set(i64::from(n));
        Ok(n)
    }

    /// True once a worker has loaded and verified the model pack since start-up.
    pub fn model_ready(&self) -> bool {
        self.inner.pool.model_ready()
    }

    pub fn shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Admits a launch and hands it to a worker, which prepares the portrait before this returns. Returns the
    /// new task (`true`), or the active task of the same room and identity (`false`; the plugin retries).
    pub async fn launch(&self, launch: Launch) -> Result<(Task, bool), LaunchError> {
        if self.shutting_down() {
            return Err(LaunchError::ShuttingDown);
        }
        let max = self.inner.config.max_sessions;
        let new = NewTask {
            task_id: new_task_id(),
            room_name: launch.room_name.clone(),
            identity: launch.identity.clone(),
            model: launch.model.clone(),
            mode: launch.mode.clone(),
            prompt: launch.prompt.clone(),
            avatar_id: launch.avatar_id.clone(),
            portrait_sha256: launch.portrait_key.clone(),
        };
        let admitted = self.inner.store.admit(new, max).await;
        let task = match admitted {
            Ok(Admission::Created(task)) => task,
            Ok(Admission::Existing(task)) => {
                return self.repeated(task, &launch).await;
            }
            Ok(Admission::AtCapacity { active }) => {
                return Err(LaunchError::AtCapacity { active, max });
            }
            Err(e) => return Err(e.into()),
        };
        let _ = self.active_count().await;
        let span = tracing::info_span!("task", task_id = %task.task_id, room = %task.room_name);
        span.in_scope(|| tracing::info!("task admitted"));
        let started =
            tracing::Instrument::instrument(self.hand_to_worker(&task, launch), span).await;
        match started {
            Ok(()) => Ok((task, true)),
            Err(e) => {
                // The session never started: leave no task behind; the caller got the error.
                if let Err(d) = self.inner.store.discard(&task.task_id).await {
                    tracing::error!(error = %d, task_id = %task.task_id, "discarding a failed launch");
                }
                let _ = self.active_count().await;
                self.inner.pool.wake();
                Err(e)
            }
        }
    }

    fn settings(&self) -> SessionSettings {
        let c = &self.inner.config;
        let secs = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        SessionSettings {
            idle_timeout_s: secs(c.session_idle_timeout),
            max_duration_s: secs(c.max_session_seconds),
            agent_join_timeout_s: secs(c.agent_join_timeout),
            connect_timeout_s: secs(c.livekit_connect_timeout),
            video_max_bitrate: c.video_max_bitrate,
            video_codec: lipcast_proto::VideoCodec::from(c.video_codec).into(),
            audio_sample_rate: c.audio_sample_rate,
            seed: rand::rng().random(),
        }
    }

    async fn hand_to_worker(&self, task: &Task, launch: Launch) -> Result<(), LaunchError> {
        let launched_at = Instant::now();
        let within = Duration::from_secs(self.inner.config.launch_timeout_seconds.max(1));
        let (ready, source) =
            self.inner.pool.acquire(within).await.map_err(|e| {
                LaunchError::NotReady(format!("no worker could take the session: {e}"))
            })?;
        let worker = ready.worker.clone();
        worker.assign(&task.task_id, &self.inner.store).await;
        let request = StartSessionRequest {
            task_id: task.task_id.clone(),
            livekit_url: launch.livekit_url,
            livekit_token: launch.livekit_token,
            room_name: launch.room_name,
            portrait: launch
                .portrait
                .map(|p| p.bytes.to_vec())
                .unwrap_or_default(),
            settings: Some(self.settings()),
        };
        let mut client = worker.client.clone();
        let answer = tokio::time::timeout(within, client.start_session(request)).await;
        match answer {
            Ok(Ok(_)) => {}
            Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
                // Nothing started in that worker: it can serve the next launch.
                self.inner.pool.give_back(ready).await;
                return Err(portrait_refused(&status));
            }
            Ok(Err(status)) => {
                worker.kill_for("excess", &self.inner.metrics).await;
                return Err(LaunchError::Internal {
                    context: "the worker failed to start the session",
                    cause: status.message().to_owned(),
                });
            }
            Err(_) => {
                worker.kill_for("hung", &self.inner.metrics).await;
                return Err(LaunchError::NotReady(format!(
                    "the worker did not prepare the portrait within {within:?}"
                )));
            }
        }
        if let Err(e) = self
            .inner
            .store
            .set_worker(&task.task_id, worker.process.pid, worker.process.start_time)
            .await
        {
            tracing::warn!(error = %e, "recording the task's worker failed");
        }
        let stop = CancellationToken::new();
        self.running().insert(
            task.task_id.clone(),
            Running {
                stop: stop.clone(),
                worker: worker.clone(),
                figures: figures::Figures::default(),
            },
        );
        tracing::info!(
            pid = worker.process.pid,
            pool = source.as_str(),
            "session handed to a worker"
        );
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            drive::drive(
                self.clone(),
                ready,
                task.task_id.clone(),
                source,
                launched_at,
                stop,
            ),
            span,
        ));
        Ok(())
    }

    /// Stops a session (`cancelled`). `None` for an unknown id; a task that already ended is returned as is.
    pub async fn stop(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        let ended = self.finish(task_id, EndReason::Stopped, None).await?;
        if let Some(r) = self.running().get(task_id) {
            r.stop.cancel();
        }
        match ended {
            Some(task) => Ok(Some(task)),
            None => self.inner.store.get(task_id).await,
        }
    }

    /// Ends an active task; the first ending wins. Announces the end to waiters and metrics.
    pub async fn finish(
        &self,
        task_id: &str,
        reason: EndReason,
        error: Option<&str>,
    ) -> Result<Option<Task>, StoreError> {
        let ended = self.inner.store.finish(task_id, reason, error).await?;
        let status = reason.status();
        if let Some(task) = &ended {
            tracing::info!(
                task_id,
                status = status.as_str(),
                reason = reason.as_str(),
                error,
                "task ended"
            );
            self.inner
                .metrics
                .tasks_finished
                .get_or_create(&crate::metrics::StatusLabel {
                    status: status.as_str(),
                })
                .inc();
            let _ = self.inner.ended.send(task.clone());
            let _ = self.active_count().await;
            self.inner.pool.wake();
        }
        Ok(ended)
    }

    /// Waits until the task is terminal, at most `limit`. `None` if it is unknown.
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

    /// Ends every active task with `reason`, e.g. those a previous run left behind.
    pub async fn fail_all_active(
        &self,
        reason: EndReason,
        error: &str,
    ) -> Result<usize, StoreError> {
        let active = self.inner.store.active().await?;
        for task in &active {
            self.finish(&task.task_id, reason, Some(error)).await?;
        }
        Ok(active.len())
    }

    /// Graceful shutdown: stop admitting, end every session, stop every worker and wait for them.
    pub async fn shutdown(&self, within: Duration) -> Result<usize, StoreError> {
        self.inner.shutting_down.store(true, Ordering::Release);
        let ended = self
            .fail_all_active(EndReason::SupervisorShutdown, "the supervisor shut down")
            .await?;
        let workers: Vec<Arc<Worker>> = {
            let running = self.running();
            running.values().for_each(|r| r.stop.cancel());
            running.values().map(|r| r.worker.clone()).collect()
        };
        self.inner.pool.close().await;
        let deadline = Instant::now() + within;
        for w in workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if w.process.wait(left).await.is_none() {
                w.kill_for("shutdown", &self.inner.metrics).await;
            }
        }
        Ok(ended)
    }

    /// Adds a worker's stats report to the session's figures.
    fn add_stats(&self, task_id: &str, stats: &lipcast_proto::Stats) {
        if let Some(r) = self.running().get_mut(task_id) {
            r.figures.add(stats);
        }
    }

    /// The live figures of a running session.
    pub fn live_stats(&self, task_id: &str) -> Option<serde_json::Value> {
        self.running().get(task_id).map(|r| r.figures.summary())
    }

    /// The session is over (its figures are in its task record by now).
    fn forget(&self, task_id: &str) {
        self.running().remove(task_id);
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
