//! The life of a session as the API sees it: admission, handing it to a worker, stop, the end, and waiting
//! for the end. [`registry`] holds the live sessions (capacity, the idempotency key, what a running session
//! needs); [`drive`] follows one running session's worker until it is over; [`repeat`] answers a launch for a
//! room whose avatar already has a live session; [`error`] says why a launch did not start one. The store
//! journals it all (admission, pending -> running, the end), for the API's records and for the next start.

mod drive;
mod error;
mod figures;
pub mod registry;
mod repeat;

pub use error::{LaunchError, Refusal};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lipcast_proto::{ERROR_CODE_KEY, PortraitRefusal, SessionSettings, StartSessionRequest};
use rand::Rng;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pool::{Pool, Worker};
use crate::portrait::Portrait;
use crate::store::{EndReason, NewTask, StoreError, Task, TaskStore};
use registry::{Admission, Registry};

/// The registry of this server's live sessions (the pool reads its free slots there too).
pub type SessionRegistry = Registry<Running>;

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

/// What a session handed to a worker carries in the registry: how to stop it, its worker, its figures so far.
pub struct Running {
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
    registry: SessionRegistry,
    /// Serialises admission, so a live entry has its journal row by the time another launch looks it up.
    admitting: tokio::sync::Mutex<()>,
}

/// What [`Sessions::admit`] found: a new task, or the live task of the same room and identity.
enum Admitted {
    New(Task),
    Existing(Task),
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
    /// Sessions over `registry` (empty: the journal's active tasks from a previous run are ended apart, by
    /// [`Sessions::fail_all_active`]).
    pub fn new(
        store: TaskStore,
        config: Arc<Config>,
        pool: Pool,
        metrics: Metrics,
        registry: SessionRegistry,
    ) -> Self {
        let (ended, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                pool,
                metrics,
                ended,
                shutting_down: AtomicBool::new(false),
                registry,
                admitting: tokio::sync::Mutex::new(()),
            }),
        }
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

    /// Live sessions (admitted, not yet ended): `active_sessions`.
    pub fn active_count(&self) -> u32 {
        self.inner.registry.live_count()
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
        let task = match self.admit(&launch).await? {
            Admitted::New(task) => task,
            Admitted::Existing(task) => return self.repeated(task, &launch).await,
        };
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
                self.inner.registry.remove(&task.task_id);
                Err(e)
            }
        }
    }

    /// Takes a permit and journals the new task, or finds the live task of the same room and identity.
    async fn admit(&self, launch: &Launch) -> Result<Admitted, LaunchError> {
        let _serial = self.inner.admitting.lock().await;
        let registry = &self.inner.registry;
        loop {
            let task_id = new_task_id();
            match registry.admit(&task_id, &launch.room_name, &launch.identity) {
                Admission::AtCapacity { active } => {
                    let max = self.inner.config.max_sessions;
                    return Err(LaunchError::AtCapacity { active, max });
                }
                Admission::Existing(id) => match self.inner.store.get(&id).await? {
                    Some(task) if !task.status.is_terminal() => {
                        return Ok(Admitted::Existing(task));
                    }
                    // Its end is journalled and the registry is about to hear of it: it is over, admit anew
                    // (the next round cannot find it again).
                    _ => {
                        registry.end(&id);
                    }
                },
                Admission::Admitted => {
                    let new = NewTask {
                        task_id: task_id.clone(),
                        room_name: launch.room_name.clone(),
                        identity: launch.identity.clone(),
                        model: launch.model.clone(),
                        mode: launch.mode.clone(),
                        prompt: launch.prompt.clone(),
                        avatar_id: launch.avatar_id.clone(),
                        portrait_sha256: launch.portrait_key.clone(),
                    };
                    return match self.inner.store.insert(new).await {
                        Ok(task) => Ok(Admitted::New(task)),
                        Err(e) => {
                            registry.remove(&task_id);
                            Err(e.into())
                        }
                    };
                }
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
        let running = Running {
            stop: stop.clone(),
            worker: worker.clone(),
            figures: figures::Figures::default(),
        };
        if !self.inner.registry.attach(&task.task_id, running) {
            // Stopped (or shut down) while it was being handed over: its end is journalled; end the session.
            tracing::info!("the task ended while its worker was starting the session; stopping it");
            stop.cancel();
        }
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
        self.inner
            .registry
            .with_running(task_id, |r| r.stop.cancel());
        match ended {
            Some(task) => Ok(Some(task)),
            None => self.inner.store.get(task_id).await,
        }
    }

    /// Ends an active task; the first ending wins (in the journal). Releases its permit, and announces the end
    /// to waiters and metrics.
    pub async fn finish(
        &self,
        task_id: &str,
        reason: EndReason,
        error: Option<&str>,
    ) -> Result<Option<Task>, StoreError> {
        let ended = self.inner.store.finish(task_id, reason, error).await?;
        // Ended now or before, the journal says it is over: it is no longer live.
        self.inner.registry.end(task_id);
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

    /// Ends every task the journal shows active with `reason`: at start-up, those a previous run left behind
    /// (the registry starts empty).
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
        let live = self.inner.registry.live_ids();
        for task_id in &live {
            self.finish(
                task_id,
                EndReason::SupervisorShutdown,
                Some("the supervisor shut down"),
            )
            .await?;
        }
        let workers: Vec<Arc<Worker>> = self.inner.registry.all_running(|r| {
            r.stop.cancel();
            r.worker.clone()
        });
        self.inner.pool.close().await;
        let deadline = Instant::now() + within;
        for w in workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if w.process.wait(left).await.is_none() {
                w.kill_for("shutdown", &self.inner.metrics).await;
            }
        }
        Ok(live.len())
    }

    /// Adds a worker's stats report to the session's figures.
    fn add_stats(&self, task_id: &str, stats: &lipcast_proto::Stats) {
        self.inner
            .registry
            .with_running(task_id, |r| r.figures.add(stats));
    }

    /// The live figures of a running session.
    pub fn live_stats(&self, task_id: &str) -> Option<serde_json::Value> {
        self.inner
            .registry
            .with_running(task_id, |r| r.figures.summary())
    }

    /// The session is over and its worker gone (its figures are in its task record by now).
    fn forget(&self, task_id: &str) {
        self.inner.registry.forget(task_id);
    }

    /// The worker of a session, live or exiting.
    fn worker_of(&self, task_id: &str) -> Option<Arc<Worker>> {
        self.inner
            .registry
            .with_running(task_id, |r| r.worker.clone())
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
