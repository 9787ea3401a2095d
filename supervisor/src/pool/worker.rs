//! One worker as the supervisor sees it: its process, its gRPC client, its event stream, and a monitor that
//! health-checks it, kills it when it hangs, and cleans up when it exits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lipcast_proto::{
    CONTRACT_VERSION, Event, HealthRequest, PrepareReply, PrepareRequest, StopRequest,
};
use tonic::Streaming;

use super::client::{self, Client, ClientError};
use super::process::{Process, SpawnSpec};
use super::worker_log;
use crate::config::LogFormat;
use crate::metrics::Metrics;
use crate::store::TaskStore;

/// How often a worker is health-checked, and how long one check may take.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// A worker that has not answered a health check for this long is killed (hung or stopped).
const HUNG_AFTER: Duration = Duration::from_secs(5);
/// SIGTERM to SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// Time for a new worker to listen and answer its first health check.
const CONNECT_WITHIN: Duration = Duration::from_secs(15);
/// Time a stopped worker's monitor gets to remove its row after the exit.
const FORGET_WITHIN: Duration = Duration::from_secs(2);
/// Time to load and warm up the model pack.
const PREPARE_WITHIN: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0} before it was ready")]
    Exited(String),
    #[error("the worker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the model pack is not usable: {0}")]
    Prepare(String),
    /// The pack loaded but renders slower than its sessions play (see `pool::speed`).
    #[error("{0}")]
    TooSlow(String),
}

/// Everything needed to start workers.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub program: PathBuf,
    pub run_dir: PathBuf,
    pub prepare: PrepareRequest,
    pub memory_limit: u64,
    pub log_format: LogFormat,
}

pub struct Worker {
    pub id: u64,
    pub process: Arc<Process>,
    pub client: Client,
    prepared: OnceLock<PrepareReply>,
    socket: PathBuf,
    /// The task it serves, for its log lines.
    task: Arc<Mutex<Option<String>>>,
    /// Set when the supervisor killed it (so its exit is not counted as a crash).
    killed: AtomicBool,
    /// Becomes true once its monitor has removed its socket and its row: a stop waits for that, so a
    /// shutdown does not close the store under it.
    forgotten: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Worker({} pid {})", self.id, self.process.pid)
    }
}

/// A worker that loaded the model pack, with its (unread) event stream.
pub struct Ready {
    pub worker: Arc<Worker>,
    pub events: Streaming<Event>,
}

impl Worker {
    /// Spawns a worker, checks its contract version, opens its event stream and has it load the model pack.
    pub async fn start(
        id: u64,
        cfg: &WorkerConfig,
        store: &TaskStore,
        metrics: &Metrics,
    ) -> Result<Ready, WorkerError> {
        let socket = cfg
            .run_dir
            .join(format!("worker-{}-{id}.sock", std::process::id()));
        let task: Arc<Mutex<Option<String>>> = Arc::default();
        let process = {
            let task = task.clone();
            let log_format = cfg.log_format;
            Process::spawn(
                SpawnSpec {
                    program: cfg.program.clone(),
                    socket: socket.clone(),
                    memory_limit: cfg.memory_limit,
                    log_format: cfg.log_format,
                },
                move |pid, line| {
                    let task = task.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    worker_log::forward(log_format, pid, task.as_deref(), line);
                },
            )
            .await
            .map_err(|source| WorkerError::Spawn {
                program: cfg.program.clone(),
                source,
            })?
        };
        metrics.worker_spawns.inc();
        if let Err(e) = store
            .add_worker(
                process.pid,
                process.start_time,
                &socket.display().to_string(),
            )
            .await
        {
            tracing::error!(error = %e, "recording a worker failed; it would not be found after a crash");
        }
        let worker = Arc::new(Worker {
            id,
            client: client::client(client::channel(&socket)?),
            process,
            prepared: OnceLock::new(),
            socket,
            task,
            killed: AtomicBool::new(false),
            forgotten: tokio::sync::watch::Sender::new(false),
        });
        tokio::spawn(monitor(worker.clone(), store.clone(), metrics.clone()));
        match worker.clone().bring_up(cfg).await {
            Ok(ready) => Ok(ready),
            Err(e) => {
                worker.kill_for("excess", metrics).await;
                Err(e)
            }
        }
    }

    async fn bring_up(self: Arc<Self>, cfg: &WorkerConfig) -> Result<Ready, WorkerError> {
        let mut client = self.client.clone();
        let deadline = Instant::now() + CONNECT_WITHIN;
        // Wait for the socket to answer (the process needs a moment to listen).
        loop {
            if let Some(exit) = self.process.exit() {
                return Err(WorkerError::Exited(exit.describe()));
            }
            match client::handshake(&mut client).await {
                Ok(_) => break,
                Err(e @ (ClientError::VersionMismatch { .. } | ClientError::Refused(_))) => {
                    return Err(e.into());
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => return Err(WorkerError::Timeout(CONNECT_WITHIN)),
            }
        }
        let events = client
            .events(lipcast_proto::EventsRequest {})
            .await
            .map_err(|s| {
                WorkerError::Prepare(format!("opening the event stream: {}", s.message()))
            })?
            .into_inner();
        let prepared = tokio::time::timeout(PREPARE_WITHIN, client.prepare(cfg.prepare.clone()))
            .await
            .map_err(|_| WorkerError::Timeout(PREPARE_WITHIN))?
            .map_err(|s| match self.process.exit() {
                Some(exit) => WorkerError::Exited(exit.describe()),
                None => WorkerError::Prepare(s.message().to_owned()),
            })?
            .into_inner();
        let _ = self.prepared.set(prepared);
        Ok(Ready {
            worker: self,
            events,
        })
    }

    /// Names the task this worker serves in its log lines (and in the `workers` table).
    pub async fn assign(&self, task_id: &str, store: &TaskStore) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task_id.to_owned());
        if let Err(e) = store
            .set_worker_task(self.process.pid, self.process.start_time, task_id)
            .await
        {
            tracing::warn!(error = %e, "recording the worker's task failed");
        }
    }

    /// What `Prepare` answered (device, pack); empty before.
    pub fn prepared(&self) -> PrepareReply {
        self.prepared.get().cloned().unwrap_or_default()
    }

    pub fn is_alive(&self) -> bool {
        self.process.is_alive()
    }

    /// Asks the worker to end (its session, or itself when idle) and waits for it to exit; kills it if it does
    /// not within `within`.
    pub async fn stop(&self, reason: &str, within: Duration, metrics: &Metrics) {
        if !self.is_alive() {
            return;
        }
        let mut client = self.client.clone();
        let asked = tokio::time::timeout(
            Duration::from_secs(1),
            client.stop(StopRequest {
                reason: reason.to_owned(),
            }),
        )
        .await;
        if !matches!(asked, Ok(Ok(_))) {
            tracing::warn!(
                pid = self.process.pid,
                "the worker did not take Stop; terminating it"
            );
        }
        if self.process.wait(within).await.is_none() {
            self.kill_for(
                match reason {
                    "shutdown" => "shutdown",
                    "stopped" => "stopped",
                    _ => "excess",
                },
                metrics,
            )
            .await;
        }
        let mut forgotten = self.forgotten.subscribe();
        let _ = tokio::time::timeout(FORGET_WITHIN, forgotten.wait_for(|f| *f)).await;
    }

    /// SIGTERM, a grace period, SIGKILL to the worker's process group; counted under `reason`.
    pub async fn kill_for(&self, reason: &'static str, metrics: &Metrics) {
        if !self.is_alive() {
            return;
        }
        self.killed.store(true, Ordering::Release);
        metrics.worker_kill(reason);
        tracing::warn!(pid = self.process.pid, reason, "killing worker");
        self.process.terminate(KILL_GRACE).await;
    }

    fn was_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
}

/// Health-checks the worker every second and kills it when it stops answering; when it exits, removes its
/// socket and its row and counts how it ended.
async fn monitor(worker: Arc<Worker>, store: TaskStore, metrics: Metrics) {
    let pid = worker.process.pid;
    let mut client = worker.client.clone();
    let mut last_ok = Instant::now();
    let mut last_cpu = 0.0;
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let exit = loop {
        tokio::select! {
            exit = worker.process.wait(Duration::from_secs(3600 * 24 * 365)) => {
                if let Some(e) = exit { break e; }
            }
            _ = tick.tick() => {
                let health = tokio::time::timeout(
                    HEALTH_TIMEOUT,
                    client.health(HealthRequest { contract_version: CONTRACT_VERSION }),
                ).await;
                match health {
                    Ok(Ok(reply)) => {
                        last_ok = Instant::now();
                        let r = reply.into_inner();
                        metrics.worker_figures(pid, r.rss_bytes, r.cpu_seconds, &mut last_cpu);
                    }
                    _ if last_ok.elapsed() >= HUNG_AFTER && worker.is_alive() => {
                        tracing::error!(pid, silent_s = last_ok.elapsed().as_secs(), "worker stopped answering health checks");
                        worker.kill_for("hung", &metrics).await;
                    }
                    _ => {}
                }
            }
        }
    };
    let kind = if worker.was_killed() {
        "killed"
    } else if exit.is_clean() {
        "clean"
    } else {
        "crashed"
    };
    metrics.worker_exit(kind, pid);
    if kind == "crashed" {
        tracing::error!(pid, "{}", exit.describe());
    } else {
        tracing::debug!(pid, kind, "worker exited");
    }
    let _ = std::fs::remove_file(&worker.socket);
    if let Err(e) = store.remove_worker(pid, worker.process.start_time).await {
        tracing::warn!(error = %e, "forgetting a reaped worker failed");
    }
    worker.forgotten.send_replace(true);
}
