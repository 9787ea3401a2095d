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

    /// Seconds an avatar waits for the agent it serves to be in the room before it gives up.
    #[arg(long, env = "AGENT_JOIN_TIMEOUT", default_value_t = 60)]
    pub agent_join_timeout: u64,

    /// Seconds a worker may take to join the LiveKit room.
    #[arg(long, env = "LIVEKIT_CONNECT_TIMEOUT", default_value_t = 10)]
    pub livekit_connect_timeout: u64,

    /// Seconds /launch waits for a prepared worker and the portrait's preparation (503 not_ready after).
    #[arg(long, env = "LAUNCH_TIMEOUT_SECONDS", default_value_t = 10)]
    pub launch_timeout_seconds: u64,

    /// Inference device of the workers: auto (CUDA if it works, else CPU, with a log line), cuda or cpu.
    #[arg(long, env = "DEVICE", value_enum, default_value_t = DeviceSetting::Auto)]
    pub device: DeviceSetting,

    /// ONNX Runtime threads per session (the CPU budget of one session).
    #[arg(long, env = "WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub worker_threads: u32,

    /// Model pack folder (default: the built-in pack shipped in models/builtin).
    #[arg(long, env = "MODEL_PACK")]
    pub model_pack: Option<PathBuf>,

    /// Download the model pack from this http(s) URL (a .tar.gz, .tar or .zip archive) on first start, into
    /// DATA_DIR/packs/, and reuse it later. Needs MODEL_PACK_SHA256; excludes MODEL_PACK.
    #[arg(long, env = "MODEL_PACK_URL")]
    pub model_pack_url: Option<String>,

    /// sha256 of the archive at MODEL_PACK_URL (64 hex digits); a download that does not match is refused.
    #[arg(long, env = "MODEL_PACK_SHA256")]
    pub model_pack_sha256: Option<String>,

    /// Largest pack archive MODEL_PACK_URL may deliver, and largest total it may unpack to, MiB.
    #[arg(long, env = "MODEL_PACK_MAX_MB", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub model_pack_max_mb: u64,

    /// Seconds without any bytes from the MODEL_PACK_URL server before the attempt is retried.
    #[arg(long, env = "MODEL_PACK_STALL_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub model_pack_stall_seconds: u64,

    /// Serve a model pack that renders fewer frames per second on this device than its sessions play (measured
    /// by the first worker at start-up), with late frames. Off: such a pack is refused and `/ready` says why.
    #[arg(long, env = "ALLOW_SLOW_PACK", default_value_t = false, action = ArgAction::Set,
          value_parser = BoolishValueParser::new())]
    pub allow_slow_pack: bool,

    /// Audio front end of the built-in pack: network (the trained audio-to-mouth model, its default) or dsp.
    #[arg(long, env = "AUDIO_FRONTEND", value_enum)]
    pub audio_frontend: Option<FrontendSetting>,

    /// Long side of the published video, pixels (0: the pack's default, 720 for the built-in pack; portraits are
    /// never upscaled).
    #[arg(long, env = "MAX_LONG_SIDE", default_value_t = 0)]
    pub max_long_side: u32,

    /// Bitrate cap of the avatar_video track for a 512x512 frame, bits per second; scaled with the frame's pixel
    /// count (between a quarter and twice this).
    #[arg(long, env = "VIDEO_MAX_BITRATE", default_value_t = 2_000_000)]
    pub video_max_bitrate: u64,

    /// Video codec of the avatar_video track: h264 (falls back to vp8) or vp8.
    #[arg(long, env = "VIDEO_CODEC", value_enum, default_value_t = CodecSetting::H264)]
    pub video_codec: CodecSetting,

    /// Sample rate of the avatar_audio track (the agent's speech is republished at this rate).
    #[arg(long, env = "AUDIO_SAMPLE_RATE", default_value_t = 24_000,
          value_parser = clap::value_parser!(u32).range(8_000..=48_000))]
    pub audio_sample_rate: u32,

    /// The lipcast-worker binary (default: next to this executable).
    #[arg(long, env = "WORKER_BIN")]
    pub worker_bin: Option<PathBuf>,

    /// Address-space limit (RLIMIT_AS) of each worker, MiB. 0: 4096 with DEVICE=cpu (a session maps about
    /// 1.2 GiB), none otherwise (CUDA reserves a large address space).
    #[arg(long, env = "WORKER_MEMORY_LIMIT_MB", default_value_t = 0)]
    pub worker_memory_limit_mb: u64,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Print the OpenAPI 3.1 document of the HTTP API (as served at /openapi.json) and exit.
    #[arg(long)]
    pub openapi: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `DEVICE`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSetting {
    Auto,
    Cuda,
    Cpu,
}

impl From<DeviceSetting> for lipcast_proto::Device {
    fn from(d: DeviceSetting) -> Self {
        match d {
            DeviceSetting::Auto => Self::Auto,
            DeviceSetting::Cuda => Self::Cuda,
            DeviceSetting::Cpu => Self::Cpu,
        }
    }
}

/// `AUDIO_FRONTEND`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendSetting {
    Network,
    Dsp,
}

impl FrontendSetting {
    /// The worker's choice: this front end, or with none set the pack's own.
    pub fn for_worker(setting: Option<Self>) -> lipcast_proto::AudioFrontend {
        match setting {
            None => lipcast_proto::AudioFrontend::Pack,
            Some(FrontendSetting::Network) => lipcast_proto::AudioFrontend::Network,
            Some(FrontendSetting::Dsp) => lipcast_proto::AudioFrontend::Dsp,
        }
    }
}

/// `VIDEO_CODEC`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecSetting {
    H264,
    Vp8,
}

impl From<CodecSetting> for lipcast_proto::VideoCodec {
    fn from(c: CodecSetting) -> Self {
        match c {
            CodecSetting::H264 => Self::H264,
            CodecSetting::Vp8 => Self::Vp8,
        }
    }
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

    /// Checks settings that depend on each other (clap checks each one alone).
    pub fn validate(&self) -> Result<(), String> {
        let url = self
            .model_pack_url
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        let sha = self
            .model_pack_sha256
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        match (url, sha) {
            (Some(_), None) => {
                return Err("MODEL_PACK_URL is set but MODEL_PACK_SHA256 is not: give the archive's sha256 \
                            so the download can be verified"
                    .into());
            }
            (None, Some(_)) => {
                return Err("MODEL_PACK_SHA256 is set but MODEL_PACK_URL is not".into());
            }
            (Some(_), Some(_)) if self.model_pack.is_some() => {
                return Err(
                    "MODEL_PACK and MODEL_PACK_URL are both set: use one (a folder, or a URL to \
                            download the pack from)"
                        .into(),
                );
            }
            _ => {}
        }
        self.pack_source().map(|_| ())
    }

    /// The pack to download, when MODEL_PACK_URL is set.
    pub fn pack_source(&self) -> Result<Option<crate::packs::Source>, String> {
        let (Some(url), Some(sha)) = (
            self.model_pack_url
                .as_deref()
                .filter(|s| !s.trim().is_empty()),
            self.model_pack_sha256
                .as_deref()
                .filter(|s| !s.trim().is_empty()),
        ) else {
            return Ok(None);
        };
        Ok(Some(crate::packs::Source {
            url: crate::packs::parse_url(url)?,
            sha256: crate::packs::parse_sha256(sha)?,
            max_bytes: self.model_pack_max_mb.saturating_mul(1024 * 1024),
            stall: Duration::from_secs(self.model_pack_stall_seconds),
            backoff: Duration::from_secs(1),
        }))
    }

    pub fn packs_dir(&self) -> PathBuf {
        self.data_dir.join("packs")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("lipcast.db")
    }

    /// RLIMIT_AS for workers, bytes (0: none).
    pub fn worker_memory_limit(&self) -> u64 {
        let mb = match (self.worker_memory_limit_mb, self.device) {
            (0, DeviceSetting::Cpu) => 4096,
            (mb, _) => mb,
        };
        mb.saturating_mul(1024 * 1024)
    }

    pub fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
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
