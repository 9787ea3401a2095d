//! The bodies of the API that are not stored types: the answers the handlers serialize, and the launch
//! requests and the test frame as the OpenAPI document (`api_doc.rs`) describes them.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Status, Task};

/// `/health` always says `healthy`: it answers as soon as the process listens.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
}

/// The liveness answer of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    /// Sessions pending or running.
    pub active_sessions: u32,
    pub max_sessions: u32,
}

/// Whether this instance takes a launch now; only `ready` comes with 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    /// No verified model yet (a pack downloading or failed, a worker that cannot load it), or shutting down.
    NotReady,
    /// Every session slot is in use.
    AtCapacity,
}

/// The readiness answer of `GET /ready`, for load balancers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: ReadyStatus,
    /// A worker has loaded and verified the model pack.
    pub model_ready: bool,
    pub active_sessions: u32,
    pub available_sessions: u32,
    pub max_sessions: u32,
    /// With `not_ready`, why, when the reason is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// While serving a pack slower than its sessions play (`ALLOW_SLOW_PACK=true`), how slow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The answer of `GET /tasks`: every task kept (active ones, and finished ones until pruned).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
}

/// The answer of an asynchronous `POST /launch` (the default): the session is admitted and starting.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchAccepted {
    /// `pending` for a new session; a repeated launch of a live one gives its current status.
    pub status: Status,
    pub task_id: String,
    pub room_name: String,
}

/// What `POST /launch` answers with 200: the accepted launch, or (with `async_mode=false`) the task once
/// the session has ended.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only described: the handler serializes the two bodies itself.
pub enum LaunchAnswer {
    Accepted(LaunchAccepted),
    Ended(Box<Task>),
}

/// The answer of `POST /benchmark`: how fast the render pipeline runs on a prepared worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct Benchmark {
    pub iterations: u32,
    /// Frames one generator call renders.
    pub frames_per_generate: u32,
    /// Milliseconds per frame.
    pub avg_ms: f64,
    pub fps: f64,
    pub vram_gb: f64,
    /// The GPU's name; null on the CPU.
    pub gpu: Option<String>,
    pub device: String,
    pub cpu: String,
    /// Milliseconds per frame of each stage.
    pub stages_ms: BTreeMap<String, f64>,
    pub width: u32,
    pub height: u32,
}

/// The `application/json` body of `POST /launch` (what livekit-plugins-bithuman sends by default).
// Only described: `launch_request.rs` parses it by hand, to answer every odd body with a typed error.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LaunchJson {
    /// The LiveKit server: a ws://, wss://, http:// or https:// URL with a host.
    #[schema(max_length = 2048)]
    pub livekit_url: String,
    /// A LiveKit access token for `room_name`: the avatar joins with it.
    #[schema(max_length = 8192)]
    pub livekit_token: String,
    #[schema(max_length = 256)]
    pub room_name: String,
    /// The portrait: base64 (or a base64 data URI) or an http(s) URL. Without it, the portrait named by
    /// `avatar_id`, else the default portrait.
    pub image: Option<String>,
    /// Read when `image` is absent, the same way.
    pub avatar_image_url: Option<String>,
    /// A stored portrait (`DATA_DIR/avatars/<id>.jpg`): letters, digits, `-` and `_`.
    #[schema(max_length = 64)]
    pub avatar_id: Option<String>,
    /// Read when `avatar_id` is absent.
    #[schema(max_length = 64)]
    pub agent_id: Option<String>,
    #[schema(max_length = 2000)]
    pub prompt: Option<String>,
    #[schema(max_length = 128)]
    pub model: Option<String>,
    #[schema(max_length = 128)]
    pub mode: Option<String>,
    /// true (the default): answer once the session is admitted; false: once it has ended. The strings
    /// "true" and "false" are accepted too.
    pub async_mode: Option<bool>,
    /// The API secret, when no header carries it.
    pub api_secret: Option<String>,
}

/// The `multipart/form-data` body of `POST /launch` (the plugin with `model="expression..."`, curl); fields
/// it does not know are ignored.
// Only described, like `LaunchJson`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LaunchForm {
    #[schema(max_length = 2048)]
    pub livekit_url: String,
    #[schema(max_length = 8192)]
    pub livekit_token: String,
    #[schema(max_length = 256)]
    pub room_name: String,
    /// The portrait file (JPEG, PNG or WebP).
    #[schema(value_type = Option<String>, format = Binary, nullable = false)]
    pub avatar_image: Option<Vec<u8>>,
    /// The portrait as an http(s) URL or base64, instead of `avatar_image`.
    #[schema(nullable = false)]
    pub avatar_image_url: Option<String>,
    /// Same as `avatar_image_url`.
    #[schema(nullable = false)]
    pub image: Option<String>,
    #[schema(max_length = 64, nullable = false)]
    pub avatar_id: Option<String>,
    #[schema(max_length = 64, nullable = false)]
    pub agent_id: Option<String>,
    #[schema(max_length = 2000, nullable = false)]
    pub prompt: Option<String>,
    #[schema(max_length = 128, nullable = false)]
    pub model: Option<String>,
    #[schema(max_length = 128, nullable = false)]
    pub mode: Option<String>,
    /// true (the default) or false; also 1/0, yes/no, on/off.
    #[schema(nullable = false)]
    pub async_mode: Option<bool>,
    /// The API secret, when no header carries it.
    #[schema(nullable = false)]
    pub api_secret: Option<String>,
}

/// The body of `GET /test-frame`: a JPEG image.
// Only described: the handler sends the worker's bytes as they are.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "image/jpeg")]
#[allow(dead_code)]
pub struct Jpeg(Vec<u8>);
