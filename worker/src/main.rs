//! lipcast-worker: serves exactly one avatar session for lipcast-supervisor, then exits.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// lipcast-worker: one avatar session, driven by lipcast-supervisor over gRPC on a Unix socket.
///
/// The supervisor starts it; running it by hand is for debugging. Settings from the environment:
/// LOG_FORMAT (text|json), RUST_LOG, ORT_DYLIB_PATH, LIVEKIT_FFI_PATH, LIPCAST_MODELS_DIR.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the control API on a Unix socket until the session ends.
    Serve(lipcast_worker::control::ServeArgs),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => {
            // One session per process: two async threads and a few blocking ones (model load, portrait,
            // benchmark) are all it needs; the cap keeps a misbehaving session from spawning hundreds.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(8)
                .enable_all()
                .thread_name("lipcast-worker")
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(lipcast_worker::control::serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
