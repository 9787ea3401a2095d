//! The worker's control plane: a tonic server on the Unix socket the supervisor chose.
//!
//! - [`service`]: the gRPC methods and the worker's state machine.
//! - [`prepared`]: the loaded model pack, shared by sessions and benchmarks.
//! - [`bench`]: `Benchmark` and `TestFrame`.

pub mod bench;
pub mod prepared;
pub mod service;

use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lipcast_proto::worker_server::WorkerServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use service::{Shared, WorkerService};

/// Largest gRPC message accepted (a portrait is at most the supervisor's body limit).
const MAX_MESSAGE: usize = 32 * 1024 * 1024;
/// After the server was told to stop, the process exits at the latest this much later.
const EXIT_GRACE: Duration = Duration::from_secs(4);

/// How the worker is reached and watched.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Unix socket to serve the control API on (created; an old file there is replaced).
    #[arg(long)]
    pub socket: PathBuf,
    /// A pipe the supervisor holds open; end-of-file means the supervisor is gone and the worker exits.
    #[arg(long)]
    pub guard_fd: Option<RawFd>,
}

/// Serves until the session ended (or `Stop`, or SIGTERM), then returns.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(fd) = args.guard_fd {
        watch_guard(fd)?;
    }
    if let Some(path) = crate::vendor::livekit_ffi() {
        lipcast_livekit::use_library(path);
    }
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)
        .with_context(|| format!("binding {}", args.socket.display()))?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", args.socket.display()))?;
    let exit = CancellationToken::new();
    let shared = Shared::new(exit.clone());
    tokio::spawn(on_sigterm(shared.clone()));
    tokio::spawn({
        let exit = exit.clone();
        async move {
            exit.cancelled().await;
            tokio::time::sleep(EXIT_GRACE).await;
            tracing::warn!("graceful exit took too long; exiting now");
            std::process::exit(0);
        }
    });
    tracing::info!(socket = %args.socket.display(), pid = std::process::id(), "lipcast-worker listening");
    let service = WorkerServer::new(WorkerService::new(shared))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let served = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), exit.cancelled())
        .await;
    let _ = std::fs::remove_file(&args.socket);
    lipcast_livekit::shutdown();
    served.context("serving the control API")
}

async fn on_sigterm(shared: std::sync::Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        tracing::warn!("cannot watch SIGTERM");
        return;
    };
    if term.recv().await.is_some() {
        tracing::info!("SIGTERM: ending");
        shared.stop("sigterm");
    }
}

/// Exits the process when the supervisor's end of the guard pipe closes (a second guard beside
/// PR_SET_PDEATHSIG, which fires when the forking thread, not the process, dies).
fn watch_guard(fd: RawFd) -> anyhow::Result<()> {
    // The supervisor passes this descriptor open, and nothing here closes it.
    let borrowed = lipcast_sys::process::inherited_fd(fd)
        .with_context(|| format!("guard fd {fd} is not open"))?;
    std::thread::Builder::new()
        .name("guard".into())
        .spawn(move || {
            let mut buf = [0u8; 16];
            loop {
                match nix::unistd::read(borrowed, &mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
            eprintln!("lipcast-worker: the supervisor is gone; exiting");
            std::process::exit(70);
        })
        .context("starting the guard thread")?;
    Ok(())
}
