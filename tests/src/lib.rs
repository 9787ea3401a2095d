//! The harness of lipcast's end-to-end tests: real processes only.
//!
//! - [`netns`]: each test that needs WebRTC runs inside its own network namespace (ICE ignores loopback).
//! - [`livekit_server`]: the real `livekit-server` (pinned, built by `scripts/livekit-server.sh`), with a config
//!   of ours, in the namespace.
//! - [`agent_job`]: a whole voice agent as users run one (livekit-agents, dispatched by the real server, with
//!   livekit-plugins-bithuman's `AvatarSession` launching lipcast).
//! - [`delay`]: a UDP relay with delay and loss in front of the server's media port (no `netem` here).
//! - [`viewer`]: a viewer in a real room (LiveKit's Python SDK) that decodes the avatar's tracks.
//! - [`demo`]: the compose demo's own web page and agent, run from the checkout, and the page in Debian's
//!   `chromium` (playwright-core).
//! - [`room`]: the LiveKit-protocol test room (`tests/room/room.py`, aiortc) and its report: only for the
//!   sender-clock lip-sync test and the drift benchmark (`tests/room/README.md` says why).
//! - [`agent`]: the agent side, LiveKit's real Python SDK (`tests/room/agent.py`).
//! - [`supervisor`]: the real `lipcast-supervisor` binary, driven over HTTP.
//! - [`token`]: LiveKit access tokens for the test room.
//! - [`output`]: the lines a child process prints, kept for the test.
//! - [`packserver`]: an HTTP server for model-pack downloads, with faults on demand.
//! - [`corpus`] and [`images`]: the committed bad-input corpus and the hostile images it uses.
//!
//! Missing prerequisites (root, iproute2, the vendored engine, the test venv, release binaries) fail the
//! test with a message saying what to run; nothing is skipped silently.

pub mod agent;
pub mod agent_job;
pub mod analysis;
pub mod corpus;
pub mod delay;
pub mod demo;
pub mod images;
pub mod launch;
pub mod livekit_server;
pub mod netns;
pub mod output;
pub mod packserver;
pub mod paths;
pub mod room;
pub mod supervisor;
pub mod token;
pub mod viewer;

pub use agent::Agent;
pub use agent_job::{AgentJob, JobScript, Utterance};
pub use livekit_server::LiveKitServer;
pub use netns::{TestEnv, in_namespace};
pub use room::RoomProcess;
pub use supervisor::Supervisor;
pub use viewer::Viewer;

/// The LiveKit server's (or the test room's) address inside the namespace.
pub const ROOM_IP: &str = "10.77.0.1";
/// API key and secret of the LiveKit server and the test room (livekit-server wants 32 characters or more).
pub const LK_KEY: &str = "devkey";
pub const LK_SECRET: &str = "lipcast-test-secret-at-least-32-chars";
