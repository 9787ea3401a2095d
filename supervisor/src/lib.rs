//! lipcast-supervisor: the bitHuman-compatible HTTP API, the SQLite task store, the warm worker pool and the
//! supervision of one worker process per session.

pub mod clock;
pub mod config;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod packs;
pub mod pool;
pub mod portrait;
mod pruner;
pub mod sessions;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use config::Config;
use lipcast_proto::PrepareRequest;
use metrics::Metrics;
use pool::{Pool, PoolConfig, WorkerConfig};
use portrait::fetch::{AllowRange, Fetcher};
use sessions::Sessions;
use store::TaskStore;

/// How long a graceful shutdown waits for sessions' workers before killing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Run the server until SIGTERM or SIGINT, then shut down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if config.api_secret.is_none() {
        tracing::warn!(
            "API_SECRET is not set: anyone who can reach this port can start sessions. \
             Set API_SECRET (or BITHUMAN_API_SECRET) in production."
        );
    }
    config.validate().map_err(anyhow::Error::msg)?;
    let pack_source = config.pack_source().map_err(anyhow::Error::msg)?;
    let allow = config
        .image_fetch_allow
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse::<AllowRange>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("IMAGE_FETCH_ALLOW")?;
    for dir in [config.data_dir.clone(), config.run_dir()] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A Unix socket path holds at most 107 bytes: with a deeper DATA_DIR every worker would fail to listen,
    // and the pool would retry forever. Say so once, at start-up.
    let longest_socket = config.run_dir().join("worker-4194304-999999.sock");
    if longest_socket.as_os_str().len() > 107 {
        anyhow::bail!(
            "DATA_DIR is too deep for the workers' sockets: {} is {} bytes, and a Unix socket path holds at most 107; use a shorter DATA_DIR",
            longest_socket.display(),
            longest_socket.as_os_str().len()
        );
    }
    let worker_bin = pool::process::worker_binary(config.worker_bin.as_deref())
        .context("locating lipcast-worker")?;
    if !worker_bin.is_file() {
        anyhow::bail!(
            "the worker binary {} does not exist (build it with cargo build --release, or set WORKER_BIN)",
            worker_bin.display()
        );
    }
    let store = TaskStore::open(&config.db_path())
        .await
        .with_context(|| format!("opening {}", config.db_path().display()))?;
    let orphans = pool::orphans::end_orphans(&store).await?;
    if orphans > 0 {
        tracing::warn!(orphans, "ended worker processes left by a previous run");
    }
    let metrics = Metrics::new(config.max_sessions);
    // This process's live sessions: none yet (what the journal shows active is ended below).
    let registry =
        sessions::SessionRegistry::new(config.max_sessions, metrics.sessions_active.clone());
    let config = Arc::new(config);
    let pool_config = PoolConfig {
        worker: WorkerConfig {
            program: worker_bin,
            run_dir: config.run_dir(),
            prepare: PrepareRequest {
                pack_dir: config
                    .model_pack
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                device: lipcast_proto::Device::from(config.device).into(),
                intra_threads: config.worker_threads,
                audio_frontend: config::FrontendSetting::for_worker(config.audio_frontend).into(),
                max_long_side: config.max_long_side,
                // The pool asks for it while the pack is not judged yet.
                time_speed: false,
            },
            memory_limit: config.worker_memory_limit(),
            log_format: config.log_format,
        },
        warm_target: if config.auto_prewarm {
            config.warm_workers
        } else {
            0
        },
        max_sessions: config.max_sessions,
        allow_slow_pack: config.allow_slow_pack,
    };
    let pool = match pack_source {
        None => Pool::start(
            pool_config,
            store.clone(),
            metrics.clone(),
            registry.clone(),
        ),
        Some(source) => {
            let pool = Pool::start_closed(
                pool_config.clone(),
                store.clone(),
                metrics.clone(),
                registry.clone(),
                "the model pack from MODEL_PACK_URL is being prepared".to_owned(),
            );
            tokio::spawn(fetch_pack(
                source,
                config.packs_dir(),
                pool.clone(),
                pool_config.worker,
            ));
            pool
        }
    };
    let sessions = Sessions::new(
        store.clone(),
        config.clone(),
        pool,
        metrics.clone(),
        registry,
    );
    let orphaned = sessions
        .fail_all_active(
            store::EndReason::SupervisorRestarted,
            "supervisor restarted; the session's worker is gone",
        )
        .await?;
    if orphaned > 0 {
        tracing::warn!(orphaned, "closed tasks left active by a previous run");
    }

    let listener = tokio::net::TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.host, config.port))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        max_sessions = config.max_sessions,
        auto_prewarm = config.auto_prewarm,
        data_dir = %config.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "lipcast-supervisor listening"
    );

    let pruner = tokio::spawn(pruner::run(store.clone(), config.clone()));
    let state = http::AppState {
        fetcher: Arc::new(Fetcher {
            allow,
            timeout: Duration::from_secs(config.image_fetch_timeout_seconds),
            max_bytes: config.max_body_bytes,
        }),
        config,
        sessions: sessions.clone(),
        metrics,
    };
    let shutdown = {
        let sessions = sessions.clone();
        async move {
            shutdown_signal().await;
            // Stop admitting at once (/ready answers 503) while requests in flight finish.
            let ended = sessions.shutdown(SHUTDOWN_GRACE).await;
            tracing::info!(?ended, "sessions ended");
        }
    };
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    pruner.abort();
    store.close().await;
    tracing::info!("lipcast-supervisor stopped");
    Ok(())
}

/// Downloads (or finds) the pack from `MODEL_PACK_URL` in the background, so `/health` answers at once, then
/// opens the pool on it. A failure is final: logged, and `/ready` stays `not_ready` with it as the detail.
async fn fetch_pack(
    source: packs::Source,
    packs_dir: std::path::PathBuf,
    pool: Pool,
    mut worker: WorkerConfig,
) {
    let status = {
        let pool = pool.clone();
        move |s: packs::Status| pool.set_waiting(s.to_string())
    };
    match packs::ensure(&source, &packs_dir, &status).await {
        Ok(dir) => {
            worker.prepare.pack_dir = dir.display().to_string();
            pool.open(worker);
        }
        Err(e) => {
            tracing::error!(url = %packs::download::redact(&source.url), "the model pack from MODEL_PACK_URL cannot be used: {e}; \
                /ready stays not_ready (fix the setting or the server and restart)");
            pool.set_waiting(format!(
                "the model pack from MODEL_PACK_URL cannot be used: {e}"
            ));
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
