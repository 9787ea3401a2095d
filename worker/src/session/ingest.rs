//! One speech segment's bytes (interleaved int16 little-endian, any rate, 1 or more channels) into the two
//! copies the session needs: mono at the published track's rate, and mono at 16 kHz for the animator. Each copy
//! is resampled once, with rubato. Chunks may split a sample or a frame: the remainder waits for the next one.

use crate::audio::SAMPLE_RATE;
use crate::audio::resample::{ResampleError, Resampler, downmix_i16};

pub struct SegmentDecoder {
    channels: usize,
    /// Bytes of an incomplete interleaved frame.
    partial: Vec<u8>,
    to_track: Resampler,
    to_features: Resampler,
    scratch: Vec<f32>,
}

/// Decoded audio of one chunk.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Mono at the track rate.
    pub track: Vec<i16>,
    /// Mono at 16 kHz, in [-1, 1].
    pub features: Vec<f32>,
}

fn to_i16(v: f32) -> i16 {
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

impl SegmentDecoder {
    pub fn new(sample_rate: u32, channels: u32, track_rate: u32) -> Result<Self, ResampleError> {
        Ok(Self {
            channels: channels.max(1) as usize,
            partial: Vec::new(),
            to_track: Resampler::with_rates(sample_rate, track_rate, 1)?,
            to_features: Resampler::with_rates(sample_rate, SAMPLE_RATE, 1)?,
            scratch: Vec::new(),
        })
    }

    /// Decodes one chunk of the byte stream.
    pub fn push(&mut self, bytes: &[u8]) -> Decoded {
        self.partial.extend_from_slice(bytes);
        let frame_bytes = 2 * self.channels;
        let whole = self.partial.len() / frame_bytes * frame_bytes;
        let samples: Vec<i16> = self.partial[..whole]
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        self.partial.drain(..whole);
        self.convert(&samples)
    }

    /// The stream ended: flushes both resamplers (an incomplete trailing frame is dropped).
    pub fn finish(&mut self) -> Decoded {
        let mut out = Decoded::default();
        self.scratch.clear();
        self.to_track.finish(&mut self.scratch);
        out.track.extend(self.scratch.iter().map(|&v| to_i16(v)));
        self.to_features.finish(&mut out.features);
        self.partial.clear();
        out
    }

    fn convert(&mut self, interleaved: &[i16]) -> Decoded {
        let mut mono = Vec::with_capacity(interleaved.len() / self.channels + 1);
        downmix_i16(interleaved, self.channels, &mut mono);
        let mut out = Decoded::default();
        self.scratch.clear();
        self.to_track.push_mono(&mono, &mut self.scratch);
        out.track.extend(self.scratch.iter().map(|&v| to_i16(v)));
        self.to_features.push_mono(&mono, &mut out.features);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn odd_chunk_boundaries_lose_nothing() {
        // 1 s of stereo at 48 kHz, split into 15001-byte chunks (splits samples and frames).
        let stereo: Vec<i16> = (0..96_000).map(|i| ((i / 2) % 200) as i16 * 10).collect();
        let data = bytes(&stereo);
        let mut d = SegmentDecoder::new(48_000, 2, 24_000).expect("decoder");
        let (mut track, mut feat) = (0, 0);
        for chunk in data.chunks(15_001) {
            let out = d.push(chunk);
            track += out.track.len();
            feat += out.features.len();
        }
        let out = d.finish();
        track += out.track.len();
        feat += out.features.len();
        assert_eq!(track, 24_000);
        assert_eq!(feat, 16_000);
    }

    #[test]
    fn same_rate_mono_is_bit_exact() {
        let mono: Vec<i16> = (0..2_400)
            .map(|i| (i * 13 % 30_000) as i16 - 15_000)
            .collect();
        let mut d = SegmentDecoder::new(24_000, 1, 24_000).expect("decoder");
        let mut out = d.push(&bytes(&mono)).track;
        out.extend(d.finish().track);
        assert_eq!(out, mono);
    }
}
