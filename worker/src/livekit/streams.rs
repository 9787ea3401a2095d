//! Speech arriving as LiveKit byte streams on topic `lk.audio_stream` (one stream per segment).

use std::collections::HashMap;

/// The topic voice agents' `DataStreamAudioOutput` writes speech to.
pub const AUDIO_STREAM_TOPIC: &str = "lk.audio_stream";
/// A segment with no data for this long is ended (livekit-agents' `STREAM_IDLE_TIMEOUT`).
pub const STREAM_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// One step of the speech stream, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeechEvent {
    /// A segment begins; its chunks follow.
    Start(SegmentStart),
    /// Interleaved int16 little-endian PCM of the segment `stream_id` (chunks may split samples).
    Chunk { stream_id: String, data: Vec<u8> },
    /// The segment ended (trailer). `error` is set when the stream was aborted or broke.
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
}
