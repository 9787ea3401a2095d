//! A safe wrapper over LiveKit's engine, `liblivekit_ffi.so` (the library shipped in the pinned PyPI
//! `livekit` wheel), loaded at run time.
//!
//! - [`ffi`]: loading the library and raw protobuf requests.
//! - [`handle`]: owned engine handles, dropped exactly once.
//! - [`dispatch`]: the one event dispatcher thread; async requests become futures.
//! - [`room`]: connect, participants, session-end signals, the room's event stream.
//! - [`publish`]: `avatar_video` / `avatar_audio` tracks and frame capture.
//! - [`streams`]: `lk.audio_stream` byte streams as speech segments.
//! - [`rpc`]: the avatar RPCs (`lk.clear_buffer`, `lk.playback_started`, `lk.playback_finished`).

pub(crate) mod dispatch;
pub mod error;
pub(crate) mod ffi;
pub(crate) mod handle;
pub mod publish;
pub mod room;
pub mod rpc;
pub mod streams;

/// Types generated at build time from the pinned wheel's FileDescriptorSet (package `livekit.proto`).
#[allow(clippy::all, clippy::pedantic, missing_docs, deprecated)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/livekit.proto.rs"));
}

pub use dispatch::shutdown;
pub use error::LiveKitError;
pub use proto::DegradationPreference;
pub use publish::{
    AudioPublishOptions, AudioTrack, VideoCodecChoice, VideoPublishOptions, VideoTrack,
};
pub use room::{
    ConnectOptions, DisconnectReason, EndReason, Participant, ParticipantKind, Room, RoomEvent,
    RoomEvents,
};
pub use rpc::{ClearBufferRequest, PlaybackFinished, RpcCallError};
pub use streams::{AUDIO_STREAM_TOPIC, SegmentStart, SpeechEvent};
