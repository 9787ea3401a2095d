//! The LiveKit agents avatar protocol's names and messages (livekit-agents `voice/avatar/_types.py`).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use lipcast_livekit::DisconnectReason;

/// The topic voice agents' `DataStreamAudioOutput` writes speech to.
pub const AUDIO_STREAM_TOPIC: &str = "lk.audio_stream";
/// A segment with no data for this long is ended (livekit-agents' `STREAM_IDLE_TIMEOUT`).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The participant attribute naming the agent an avatar serves.
pub const PUBLISH_ON_BEHALF: &str = "lk.publish_on_behalf";
pub const RPC_CLEAR_BUFFER: &str = "lk.clear_buffer";
pub const RPC_PLAYBACK_STARTED: &str = "lk.playback_started";
pub const RPC_PLAYBACK_FINISHED: &str = "lk.playback_finished";
/// The tracks the agent's room I/O subscribes to.
pub const VIDEO_TRACK_NAME: &str = "avatar_video";
pub const AUDIO_TRACK_NAME: &str = "avatar_audio";

/// An accepted `lk.clear_buffer` from the served agent (already answered `"ok"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearBufferRequest {
    pub caller: String,
    pub payload: String,
}

/// `lk.playback_finished` payload; serialises exactly as the agent's `PlaybackFinishedEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlaybackFinished {
    /// Seconds of the segment actually played.
    pub playback_position: f64,
    pub interrupted: bool,
    /// Always `null` (the agent rebuilds the event from these three keys exactly).
    pub synchronized_transcript: Option<()>,
}

impl PlaybackFinished {
    pub fn new(playback_position: f64, interrupted: bool) -> Self {
        Self {
            playback_position,
            interrupted,
            synchronized_transcript: None,
        }
    }

    /// The JSON payload: `{"playback_position": <f64>, "interrupted": <bool>, "synchronized_transcript": null}`.
    pub fn payload(&self) -> String {
        let pos = if self.playback_position.is_finite() {
            self.playback_position.max(0.0)
        } else {
            0.0
        };
        // Format by hand so the float always carries a decimal point and the key order is fixed.
        let pos = serde_json::to_string(&pos).unwrap_or_else(|_| "0.0".into());
        format!(
            "{{\"playback_position\": {pos}, \"interrupted\": {}, \"synchronized_transcript\": null}}",
            self.interrupted
        )
    }
}

/// The start of one speech segment (a byte stream's header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentStart {
    pub stream_id: String,
    /// Identity of the participant that sent it.
    pub sender: String,
    pub sample_rate: u32,
    pub num_channels: u16,
    pub mime_type: String,
    /// Every attribute of the stream (including `sample_rate` and `num_channels`).
    pub attributes: HashMap<String, String>,
}

/// One step of the speech stream, in order: segments never interleave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeechEvent {
    /// A segment begins; its chunks follow.
    Start(SegmentStart),
    /// Interleaved int16 little-endian PCM of the segment `stream_id` (chunks may split samples).
    Chunk { stream_id: String, data: Vec<u8> },
    /// The segment ended (trailer). `error` is set when the stream was aborted, broke, went idle or was
    /// superseded by a newer one.
    End {
        stream_id: String,
        error: Option<String>,
    },
    /// A stream on the audio topic that cannot be played (missing/invalid attributes or an unexpected
    /// sender); it is dropped unread.
    Rejected {
        stream_id: String,
        sender: String,
        reason: String,
    },
}

/// Why the room side of a session is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The agent the avatar serves left the room.
    AgentLeft {
        identity: String,
        reason: DisconnectReason,
    },
    /// The avatar was removed from the room (RoomService `RemoveParticipant`).
    Removed,
    /// The room was closed or deleted.
    RoomClosed,
    /// Any other disconnection (server shutdown, signal loss, duplicate identity...).
    Disconnected(DisconnectReason),
}

impl From<DisconnectReason> for EndReason {
    fn from(reason: DisconnectReason) -> Self {
        match reason {
            DisconnectReason::ParticipantRemoved => EndReason::Removed,
            DisconnectReason::RoomDeleted | DisconnectReason::RoomClosed => EndReason::RoomClosed,
            other => EndReason::Disconnected(other),
        }
    }
}

/// Read `sample_rate` and `num_channels` from a stream's attributes.
pub fn audio_format(attributes: &HashMap<String, String>) -> Result<(u32, u16), String> {
    let rate = attributes
        .get("sample_rate")
        .ok_or("missing sample_rate attribute")?;
    let rate: u32 = rate
        .trim()
        .parse()
        .map_err(|_| format!("invalid sample_rate attribute {rate:?}"))?;
    if !(1_000..=384_000).contains(&rate) {
        return Err(format!("unsupported sample_rate {rate}"));
    }
    let ch = attributes
        .get("num_channels")
        .ok_or("missing num_channels attribute")?;
    let ch: u16 = ch
        .trim()
        .parse()
        .map_err(|_| format!("invalid num_channels attribute {ch:?}"))?;
    if !(1..=8).contains(&ch) {
        return Err(format!("unsupported num_channels {ch}"));
    }
    Ok((rate, ch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_valid_format() {
        assert_eq!(
            audio_format(&attrs(&[("sample_rate", "24000"), ("num_channels", "1")])),
            Ok((24000, 1))
        );
    }

    #[test]
    fn rejects_missing_or_invalid() {
        assert!(audio_format(&attrs(&[("num_channels", "1")])).is_err());
        assert!(audio_format(&attrs(&[("sample_rate", "24000")])).is_err());
        assert!(audio_format(&attrs(&[("sample_rate", "x"), ("num_channels", "1")])).is_err());
        assert!(audio_format(&attrs(&[("sample_rate", "24000"), ("num_channels", "0")])).is_err());
        assert!(audio_format(&attrs(&[("sample_rate", "-1"), ("num_channels", "1")])).is_err());
    }

    #[test]
    fn playback_finished_payload_is_exact() {
        assert_eq!(
            PlaybackFinished::new(3.0, false).payload(),
            r#"{"playback_position": 3.0, "interrupted": false, "synchronized_transcript": null}"#
        );
        assert_eq!(
            PlaybackFinished::new(1.24, true).payload(),
            r#"{"playback_position": 1.24, "interrupted": true, "synchronized_transcript": null}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&PlaybackFinished::new(f64::NAN, true).payload())
                .unwrap_or(serde_json::Value::Null);
        assert_eq!(v["playback_position"], serde_json::json!(0.0));
        assert!(v["synchronized_transcript"].is_null());
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }
}
