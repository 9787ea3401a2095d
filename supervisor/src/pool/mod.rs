//! The warm pool: idle workers that have loaded the model pack, ready for the next launch.
//!
//! With `AUTO_PREWARM=true` the pool keeps `WARM_WORKERS` idle workers, never more than the free session
//! slots. A launch takes a warm worker or, if none is there, starts one on the spot ("cold"). A worker serves
//! one session and exits; the pool refills. Without prewarming, one worker is still started at start-up to
//! verify the model pack (that is what `model_ready` means), then stopped.
//!
//! A pool can also start *closed* ([`Pool::start_closed`]): no worker starts until [`Pool::open`] names the
//! model pack (a pack still downloading from `MODEL_PACK_URL`); meanwhile launches are refused as not ready
//! and [`Pool::not_ready_reason`] says why.
//!
//! - [`process`]: spawning, exit notification, killing and reaping.
//! - [`client`]: the gRPC client and the contract handshake.
//! - [`worker`]: one worker: start-up, health monitor, stop and kill.
//! - [`worker_log`]: the workers' log lines written through into the supervisor's log.
//! - [`orphans`]: ending workers a crashed supervisor left behind.
//! - [`speed`]: whether the pack renders as fast as its sessions play (a slow pack is refused unless
//!   `ALLOW_SLOW_PACK`).

pub mod client;
pub mod orphans;
pub mod process;
mod speed;
pub mod worker;
mod worker_log;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use lipcast_proto::PrepareReply;

use crate::metrics::Metrics;
use crate::sessions::SessionRegistry;
use crate::store::TaskStore;
pub use worker::{Ready, Worker, WorkerConfig, WorkerError};

/// Longest pause between two attempts to start a worker after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long closing waits for workers still starting (the built-in pack loads in about a second).
const STARTING_AT_CLOSE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub worker: WorkerConfig,
    /// Idle workers to keep (0: start on demand).
    pub warm_target: u32,
    pub max_sessions: u32,
    /// Serve a pack that renders slower than its sessions play (`ALLOW_SLOW_PACK`), with a warning.
    pub allow_slow_pack: bool,
}

/// Where a launch's worker came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Warm,
    Cold,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Warm => "warm",
            Source::Cold => "cold",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no prepared worker within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Start(#[from] WorkerError),
    #[error("the server is shutting down")]
    Closed,
    #[error("{0}")]
    NotOpen(String),
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: PoolConfig,
    /// The workers' configuration once the pool is open (the model pack is in place).
    worker: OnceLock<WorkerConfig>,
    store: TaskStore,
    metrics: Metrics,
    /// The live sessions: the free slots are `max_sessions` less these.
    sessions: SessionRegistry,
    idle: Mutex<VecDeque<Ready>>,
    spawning: AtomicU32,
    next_id: AtomicU64,
    wake: Notify,
    closed: AtomicBool,
    /// What is known of the model pack and of the last attempts to start a worker.
    pack: Mutex<PackState>,
}

/// The pool's knowledge of its model pack, behind one lock so `/ready` never reads a half-made change.
#[derive(Debug, Default)]
struct PackState {
    /// Why the pool is not open yet (download progress), or never will be.
    waiting: String,
    verdict: Verdict,
    /// Consecutive failed worker starts, when the next may be tried, and why the last one failed.
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// What the first worker that loaded the pack made of it; the first verdict stands until restart.
#[derive(Debug, Default, Clone, PartialEq)]
enum Verdict {
    /// No worker has loaded the pack yet.
    #[default]
    Unverified,
    /// Verified: sessions are served. `slow` says how slow when served anyway (`ALLOW_SLOW_PACK`).
    Ready { slow: Option<String> },
    /// Too slow for this device, and the operator did not opt in: no worker starts again.
    Refused(String),
}

impl Pool {
    /// Starts the pool's refill loop (and, without prewarming, the one verification worker).
    pub fn start(
        cfg: PoolConfig,
        store: TaskStore,
        metrics: Metrics,
        sessions: SessionRegistry,
    ) -> Self {
        let worker = cfg.worker.clone();
        let pool = Self::start_closed(cfg, store, metrics, sessions, String::new());
        pool.open(worker);
        pool
    }

    /// A pool that starts no worker until [`Pool::open`]; `waiting` says why (for `/ready`).
    pub fn start_closed(
        cfg: PoolConfig,
        store: TaskStore,
        metrics: Metrics,
        sessions: SessionRegistry,
        waiting: String,
    ) -> Self {
        Pool {
            inner: Arc::new(Inner {
                cfg,
                worker: OnceLock::new(),
                store,
                metrics,
                sessions,
                idle: Mutex::new(VecDeque::new()),
                spawning: AtomicU32::new(0),
                next_id: AtomicU64::new(1),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
                pack: Mutex::new(PackState {
                    waiting,
                    ..PackState::default()
                }),
            }),
        }
    }

    /// Opens the pool with the workers' configuration (the model pack in place): the refill loop and, without
    /// prewarming, the verification worker start. Opening twice does nothing.
    pub fn open(&self, worker: WorkerConfig) {
        if self.inner.worker.set(worker).is_err() {
            return;
        }
        tokio::spawn(self.clone().refill_loop());
        if self.inner.cfg.warm_target == 0 {
            tokio::spawn(self.clone().verify());
        }
        self.wake();
    }

    fn pack(&self) -> MutexGuard<'_, PackState> {
        self.inner.pack.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Says why the pool is not open yet (download progress), or why it never will be (a failure).
    pub fn set_waiting(&self, why: String) {
        self.pack().waiting = why;
    }

    /// Why `/ready` is not ready, in a sentence: the pack still downloading, failed or refused, or the last
    /// worker failure. `None` when the model is ready or nothing is known yet.
    pub fn not_ready_reason(&self) -> Option<String> {
        let open = self.inner.worker.get().is_some();
        let pack = self.pack();
        match &pack.verdict {
            Verdict::Refused(why) => Some(why.clone()),
            Verdict::Ready { .. } => None,
            Verdict::Unverified if !open => Some(pack.waiting.clone()).filter(|w| !w.is_empty()),
            Verdict::Unverified => pack.last_error.clone(),
        }
    }

    /// The pack's refusal, once it is refused for good.
    fn refused(&self) -> Option<String> {
        match &self.pack().verdict {
            Verdict::Refused(why) => Some(why.clone()),
            _ => None,
        }
    }

    fn idle(&self) -> MutexGuard<'_, VecDeque<Ready>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once a worker loaded and verified the model pack since start-up.
    pub fn model_ready(&self) -> bool {
        matches!(self.pack().verdict, Verdict::Ready { .. })
    }

    /// While serving a pack slower than its sessions play (`ALLOW_SLOW_PACK`): how slow.
    pub fn slow_warning(&self) -> Option<String> {
        match &self.pack().verdict {
            Verdict::Ready { slow } => slow.clone(),
            _ => None,
        }
    }

    /// Why the last worker could not start, if it could not.
    pub fn last_error(&self) -> Option<String> {
        self.pack().last_error.clone()
    }

    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Re-examines the pool now (after a launch, a worker's start, ...; a session's end wakes it through the
    /// registry).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn start_worker(&self) -> Result<Ready, WorkerError> {
        let i = &self.inner;
        let Some(worker) = i.worker.get() else {
            return Err(WorkerError::Prepare(
                "the model pack is not in place yet".to_owned(),
            ));
        };
        if let Some(refused) = self.refused() {
            return Err(WorkerError::TooSlow(refused));
        }
        // Until the pack is judged, workers time its speed (the verdict needs it); later ones skip that.
        let timed;
        let worker = if self.pack().verdict == Verdict::Unverified {
            let mut cfg = worker.clone();
            cfg.prepare.time_speed = true;
            timed = cfg;
            &timed
        } else {
            worker
        };
        let started = match Worker::start(self.next_id(), worker, &i.store, &i.metrics).await {
            Ok(ready) => self.verified(ready).await,
            Err(e) => Err(e),
        };
        match &started {
            Ok(_) => {
                let mut pack = self.pack();
                pack.failures = 0;
                pack.last_error = None;
            }
            Err(WorkerError::TooSlow(_)) => {}
            Err(e) => {
                let backoff = {
                    let mut pack = self.pack();
                    pack.failures += 1;
                    let backoff = (Duration::from_secs(1)
                        * 2u32.saturating_pow(pack.failures.min(5)))
                    .min(MAX_BACKOFF);
                    pack.retry_at = Some(Instant::now() + backoff);
                    pack.last_error = Some(e.to_string());
                    backoff
                };
                tracing::error!(error = %e, retry_in_s = backoff.as_secs(), "a worker could not start");
            }
        }
        started
    }

    /// A worker loaded the pack. The first one's verdict stands: its measured speed decides whether the pack
    /// is served (a pack slower than its sessions play is refused for good, its worker stopped, unless
    /// `ALLOW_SLOW_PACK`).
    async fn verified(&self, ready: Ready) -> Result<Ready, WorkerError> {
        let i = &self.inner;
        let p = ready.worker.prepared();
        let (verdict, first) = {
            let mut pack = self.pack();
            let first = pack.verdict == Verdict::Unverified;
            if first {
                pack.verdict = self.judge(&p);
            }
            (pack.verdict.clone(), first)
        };
        match verdict {
            Verdict::Refused(why) => {
                if first {
                    tracing::error!(why = %why, "refusing the model pack: it is too slow for this device");
                }
                ready
                    .worker
                    .stop("too_slow", Duration::from_secs(5), &i.metrics)
                    .await;
                return Err(WorkerError::TooSlow(why));
            }
            Verdict::Ready { slow } if first => {
                if let Some(slow) = slow {
                    tracing::warn!(why = %slow, "serving a model pack slower than real time: sessions will \
                        show late frames");
                }
                tracing::info!(device = p.device().name(), pack = %p.pack_name, version = %p.pack_version,
                    load_ms = p.load_ms, warmup_ms = p.warmup_ms,
                    frames_per_second = p.frames_per_second, "model pack verified: ready");
                i.metrics.model_ready.set(1);
                i.metrics.set_build_info(p.device().name());
            }
            // Judged already by the worker that was first.
            Verdict::Ready { .. } | Verdict::Unverified => {}
        }
        Ok(ready)
    }

    /// The verdict on a pack from its first worker's figures.
    fn judge(&self, p: &PrepareReply) -> Verdict {
        match speed::too_slow(p) {
            None => Verdict::Ready { slow: None },
            Some(slow) if self.inner.cfg.allow_slow_pack => Verdict::Ready {
                slow: Some(format!(
                    "{slow}: served anyway (ALLOW_SLOW_PACK=true), with late frames"
                )),
            },
            Some(slow) => Verdict::Refused(format!(
                "{slow}: serve it on a faster device (a GPU), or set ALLOW_SLOW_PACK=true to serve it anyway \
                 with late frames"
            )),
        }
    }

    /// Without prewarming: start one worker to verify the pack, then stop it.
    async fn verify(self) {
        loop {
            if self.inner.closed.load(Ordering::Acquire)
                || self.pack().verdict != Verdict::Unverified
            {
                return;
            }
            match self.start_worker().await {
                Ok(ready) => {
                    ready
                        .worker
                        .stop("verified", Duration::from_secs(5), &self.inner.metrics)
                        .await;
                    return;
                }
                Err(_) => {
                    let wait = self.pack().retry_at.map_or(Duration::from_secs(1), |t| {
                        t.saturating_duration_since(Instant::now())
                    });
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Takes a warm worker, or starts one (bounded by `within`).
    pub async fn acquire(&self, within: Duration) -> Result<(Ready, Source), PoolError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        if self.inner.worker.get().is_none() || self.refused().is_some() {
            return Err(PoolError::NotOpen(self.not_ready_reason().unwrap_or_else(
                || "the model pack is not in place yet".to_owned(),
            )));
        }
        if let Some(ready) = self.take_idle() {
            return Ok((ready, Source::Warm));
        }
        self.wake();
        let pool = self.clone();
        let mut starting = tokio::spawn(async move { pool.start_worker().await });
        match tokio::time::timeout(within, &mut starting).await {
            Ok(Ok(Ok(ready))) => Ok((ready, Source::Cold)),
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(join)) => Err(PoolError::Start(WorkerError::Prepare(format!(
                "starting a worker panicked: {join}"
            )))),
            Err(_) => {
                // Too late for this launch; the worker may still become useful to the pool.
                let pool = self.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(ready)) = starting.await {
                        pool.give_back(ready).await;
                    }
                });
                Err(PoolError::Timeout(within))
            }
        }
    }

    /// Takes a live warm worker if there is one; never starts one.
    pub fn take_idle(&self) -> Option<Ready> {
        loop {
            let next = self.idle().pop_front();
            match next {
                Some(ready) if ready.worker.is_alive() => {
                    self.publish_count();
                    self.wake();
                    return Some(ready);
                }
                Some(_) => continue, // died while idle; its monitor already reaped it
                None => return None,
            }
        }
    }

    /// Returns a worker that served no session (a refused portrait, a benchmark) to the pool, or stops it
    /// when the pool has enough.
    pub async fn give_back(&self, ready: Ready) {
        if !ready.worker.is_alive() {
            return;
        }
        let keep = !self.inner.closed.load(Ordering::Acquire)
            && (self.idle().len() as u32) < self.inner.cfg.warm_target;
        if keep {
            self.idle().push_back(ready);
            self.publish_count();
        } else {
            ready
                .worker
                .stop("excess", Duration::from_secs(5), &self.inner.metrics)
                .await;
        }
        self.wake();
    }

    fn publish_count(&self) {
        let n = self.idle().len();
        self.inner
            .metrics
            .warm_workers
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    async fn refill_loop(self) {
        loop {
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = self.inner.sessions.released() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if self.inner.closed.load(Ordering::Acquire) || self.refused().is_some() {
                return;
            }
            self.idle().retain(|r| r.worker.is_alive());
            let active = self.inner.sessions.live_count();
            let free = self.inner.cfg.max_sessions.saturating_sub(active);
            let target = self.inner.cfg.warm_target.min(free);
            // Read together under the idle lock: a started worker moves from `spawning` to `idle` under it,
            // so it is never counted twice or not at all (which started a second worker, then stopped one).
            let (idle, spawning) = {
                let idle = self.idle();
                (
                    idle.len() as u32,
                    self.inner.spawning.load(Ordering::Acquire),
                )
            };
            let may_retry = self.pack().retry_at.is_none_or(|t| Instant::now() >= t);
            if idle + spawning < target && may_retry {
                for _ in 0..(target - idle - spawning) {
                    self.inner.spawning.fetch_add(1, Ordering::AcqRel);
                    let pool = self.clone();
                    tokio::spawn(async move {
                        let started = pool.start_worker().await;
                        match started {
                            Ok(ready) if !pool.inner.closed.load(Ordering::Acquire) => {
                                let mut idle = pool.idle();
                                idle.push_back(ready);
                                pool.inner.spawning.fetch_sub(1, Ordering::AcqRel);
                                drop(idle);
                                pool.publish_count();
                            }
                            Ok(ready) => {
                                // Stopped before it stops counting, so `close` can wait for it.
                                ready
                                    .worker
                                    .stop("shutdown", Duration::from_secs(5), &pool.inner.metrics)
                                    .await;
                                pool.inner.spawning.fetch_sub(1, Ordering::AcqRel);
                            }
                            Err(_) => {
                                pool.inner.spawning.fetch_sub(1, Ordering::AcqRel);
                            }
                        }
                        pool.wake();
                    });
                }
            }
            // Never hold more idle workers than free slots.
            let extra: Vec<Ready> = {
                let mut idle = self.idle();
                let keep = target as usize;
                if idle.len() > keep {
                    idle.drain(keep..).collect()
                } else {
                    Vec::new()
                }
            };
            for ready in extra {
                let metrics = self.inner.metrics.clone();
                tokio::spawn(async move {
                    ready
                        .worker
                        .stop("excess", Duration::from_secs(5), &metrics)
                        .await
                });
            }
            self.publish_count();
        }
    }

    /// Stops admitting and ends every idle worker.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.wake();
        // Workers still starting stop themselves once ready (they see `closed`); wait for them, bounded, so
        // none outlives a graceful shutdown. After this, nothing more joins the idle queue.
        let deadline = Instant::now() + STARTING_AT_CLOSE;
        while self.inner.spawning.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let idle: Vec<Ready> = self.idle().drain(..).collect();
        let stops = idle.into_iter().map(|r| {
            let metrics = self.inner.metrics.clone();
            async move {
                r.worker
                    .stop("shutdown", Duration::from_secs(3), &metrics)
                    .await
            }
        });
        futures_util::future::join_all(stops).await;
        self.publish_count();
    }
}
