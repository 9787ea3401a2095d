//! Every setting of the supervisor, from flags or environment, in one place (`--help` documents them).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};

/// lipcast-supervisor: a self-hosted, real-time talking-avatar server for LiveKit.
///
/// Serves the bitHuman-compatible HTTP API (POST /launch, /health, /ready, /tasks, ...) and runs one
/// worker process per avatar session. Every flag can also be given as the environment variable shown.
#[derive(Parser, Debug, Clone)]
#[command(version, about, long_about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// HTTP port.
    #[arg(long, env = "PORT", default_value_t = 8089)]
    pub port: u16,

    /// Folder for lipcast.db (task store), run/ (worker sockets), avatars/ (named portraits), packs/.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Maximum concurrent avatar sessions (pending + running).
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_sessions: u32,

    /// Seconds without any audio from the agent after which a session ends (reason `idle`).
    #[arg(long, env = "SESSION_IDLE_TIMEOUT", default_value_t = 600)]
    pub session_idle_timeout: u64,

    /// Upper bound on one session's length in seconds; also bounds a blocking (async_mode=false) launch.
    #[arg(long, env = "MAX_SESSION_SECONDS", default_value_t = 3600)]
    pub max_session_seconds: u64,

    /// Keep warm workers (model loaded, warmed up) ready for the next launch.
    #[arg(long, env = "AUTO_PREWARM", default_value_t = true, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub auto_prewarm: bool,

    /// How many idle warm workers to keep when AUTO_PREWARM is on (never more than free slots).
    #[arg(long, env = "WARM_WORKERS", default_value_t = 1)]
    pub warm_workers: u32,

    /// Seconds a terminal task (completed, failed, cancelled) stays in /tasks.
    #[arg(long, env = "TASK_RETENTION_SECONDS", default_value_t = 3600)]
    pub task_retention_seconds: u64,

    /// Most terminal tasks kept in /tasks; the oldest go first. Active tasks are never evicted.
    #[arg(long, env = "MAX_TASK_HISTORY", default_value_t = 1000)]
    pub max_task_history: u32,

    /// Seconds between two prunings of the task history.
    #[arg(long, env = "TASK_PRUNE_INTERVAL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub task_prune_interval_seconds: u64,

    /// Shared secret required on /launch, /tasks*, /benchmark and /test-frame (header `api-secret`,
    /// `Authorization: Bearer`, or the `api_secret` field). BITHUMAN_API_SECRET is accepted as an alias.
    /// When unset, the API is open and a warning is logged at start-up.
    #[arg(long, env = "API_SECRET", hide_env_values = true)]
    pub api_secret: Option<String>,

    /// Also require the API secret on /metrics.
    #[arg(long, env = "METRICS_REQUIRE_AUTH", default_value_t = false, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub metrics_require_auth: bool,

    /// Largest accepted request body in bytes (413 above it).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest accepted portrait in pixels (width x height), against decompression bombs.
    #[arg(long, env = "MAX_IMAGE_PIXELS", default_value_t = 25_000_000)]
    pub max_image_pixels: u64,

    /// Seconds allowed for fetching a portrait URL.
    #[arg(long, env = "IMAGE_FETCH_TIMEOUT_SECONDS", default_value_t = 10)]
    pub image_fetch_timeout_seconds: u64,

    /// Comma-separated IP addresses or CIDR ranges that portrait URLs may resolve to even though they
    /// are private, loopback or link-local (by default such addresses are refused).
    #[arg(long, env = "IMAGE_FETCH_ALLOW", value_delimiter = ',')]
    pub image_fetch_allow: Vec<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Parse flags and environment, applying the `BITHUMAN_API_SECRET` alias.
    pub fn load() -> Self {
        let mut config = Self::parse();
        if config.api_secret.is_none() {
            config.api_secret = std::env::var("BITHUMAN_API_SECRET").ok();
        }
        config.api_secret = config.api_secret.filter(|s| !s.is_empty());
        config
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("lipcast.db")
    }

    pub fn avatars_dir(&self) -> PathBuf {
        self.data_dir.join("avatars")
    }

    pub fn task_retention(&self) -> Duration {
        Duration::from_secs(self.task_retention_seconds)
    }

    pub fn max_session(&self) -> Duration {
        Duration::from_secs(self.max_session_seconds)
    }
}
