//! lipcast-supervisor: the bitHuman-compatible HTTP API, the SQLite task store, and (with workers)
//! the supervision of one worker process per session.

pub mod clock;
pub mod config;
pub mod http;
pub mod logging;
pub mod portrait;
mod pruner;
pub mod sessions;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use config::Config;
use portrait::fetch::{AllowRange, Fetcher};
use sessions::Sessions;
use store::TaskStore;

/// Run the server until SIGTERM or SIGINT, then shut down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if config.api_secret.is_none() {
        tracing::warn!(
            "API_SECRET is not set: anyone who can reach this port can start sessions. \
             Set API_SECRET (or BITHUMAN_API_SECRET) in production."
        );
    }
    let allow = config
        .image_fetch_allow
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse::<AllowRange>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("IMAGE_FETCH_ALLOW")?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = TaskStore::open(&config.db_path())
        .await
        .with_context(|| format!("opening {}", config.db_path().display()))?;
    let sessions = Sessions::new(store.clone(), config.max_sessions);
    let orphaned = sessions
        .fail_all_active(
            "supervisor_restarted",
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
        data_dir = %config.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "lipcast-supervisor listening"
    );

    let config = Arc::new(config);
    let pruner = tokio::spawn(pruner::run(store.clone(), config.clone()));
    let state = http::AppState {
        fetcher: Arc::new(Fetcher {
            allow,
            timeout: Duration::from_secs(config.image_fetch_timeout_seconds),
            max_bytes: config.max_body_bytes,
        }),
        config,
        sessions: sessions.clone(),
    };
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal(sessions.clone()))
        .await
        .context("serving HTTP")?;

    pruner.abort();
    let ended = sessions
        .fail_all_active("supervisor_shutdown", "the supervisor shut down")
        .await?;
    store.close().await;
    tracing::info!(ended, "lipcast-supervisor stopped");
    Ok(())
}

async fn shutdown_signal(sessions: Sessions) {
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
    sessions.begin_shutdown();
}
