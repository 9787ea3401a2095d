//! The LiveKit agents avatar protocol, shaped like livekit-agents' `voice/avatar/`:
//!
//! - [`types`]: its names and messages (`_types.py`).
//! - [`receiver`]: the served agent, its speech segments in order, `lk.clear_buffer`, the end of the
//!   session (`_datastream_io.py`, receiving end).
//! - [`notify`]: `lk.playback_started` / `lk.playback_finished` to the agent.
//!
//! The runner (`_runner.py`: the 40 ms schedule, the audio pacer) is [`crate::session`].

pub mod notify;
pub mod receiver;
pub mod types;

pub use receiver::{AvatarEvent, AvatarReceiver};
pub use types::{
    AUDIO_TRACK_NAME, ClearBufferRequest, EndReason, PlaybackFinished, SegmentStart, SpeechEvent,
    VIDEO_TRACK_NAME,
};
