//! lipcast-livekit: a safe wrapper over LiveKit's engine, `liblivekit_ffi.so` (the library shipped in the
//! pinned PyPI `livekit` wheel), loaded at run time. Generic LiveKit only: what an avatar does with a room
//! lives in the worker's `protocol` module.
//!
//! Every `unsafe` of the workspace's LiveKit code is here (the library, its callback and its handles).
//!
//! - [`ffi`]: loading the library and raw protobuf requests.
//! - [`handle`]: owned engine handles, dropped exactly once.
//! - [`dispatch`]: the one event dispatcher thread; async requests become futures.
//! - [`room`]: connect, participants, the room's event stream.
//! - [`publish`]: a video and an audio track, and frame capture.
//! - [`streams`]: byte streams opened by other participants.
//! - [`rpc`]: calling other participants' methods, answering calls of ours.

pub(crate) mod dispatch;
pub mod error;
pub(crate) mod ffi;
pub(crate) mod handle;
pub mod publish;
pub mod room;
pub mod rpc;
pub mod streams;

/// Types generated at build time from the pinned wheel's FileDescriptorSet (package `livekit.proto`).
#[allow(clippy::all, clippy::pedantic, missing_docs, deprecated, unsafe_code)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/livekit.proto.rs"));
}

pub use dispatch::{shutdown, use_library};
pub use error::LiveKitError;
pub use proto::DegradationPreference;
pub use publish::{
    AudioPublishOptions, AudioTrack, OutboundVideoStats, VideoCodecChoice, VideoPublishOptions,
    VideoTrack,
};
pub use room::{
    ConnectOptions, DisconnectReason, Participant, ParticipantKind, Room, RoomEvent, RoomEvents,
};
pub use rpc::{
    RPC_APPLICATION_ERROR, RPC_UNSUPPORTED_METHOD, RpcCallError, RpcFailure, RpcInvocation,
};
pub use streams::{IncomingByteStream, ReaderId};
