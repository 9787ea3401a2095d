//! Streaming sample-rate conversion of the agent's speech, with rubato's FFT resampler (fixed ratio, high
//! quality). Interleaved int16 of any channel count is mixed down to mono first.
//!
//! Push any number of samples; whole chunks are converted as they fill up, and [`Resampler::finish`]
//! flushes the tail at the end of a segment. The resampler's own delay is trimmed, so output sample `i`
//! corresponds to input time `i / out_rate` and a finished segment has exactly
//! `round(n_in * out_rate / in_rate)` samples.

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler as _};

use super::frontend::SAMPLE_RATE;

/// Input frames per conversion step (about 10 ms at 48 kHz); rubato rounds it to fit the ratio.
const CHUNK: usize = 480;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot resample {from} Hz to {to} Hz: {reason}")]
    Construct { from: u32, to: u32, reason: String },
}

/// Mono streaming resampler from `in_rate` to `out_rate` (a pass-through when they are equal).
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    fft: Option<Box<Fft<f32>>>,
    /// Mono input not yet converted.
    pending: Vec<f32>,
    /// Output frames still to drop at the start (the resampler's delay).
    delay_left: usize,
    in_total: u64,
    out_total: u64,
    scratch_in: Vec<Vec<f32>>,
    scratch_out: Vec<Vec<f32>>,
    finished: bool,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("in_rate", &self.in_rate)
            .field("out_rate", &self.out_rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// Interleaved int16 to mono f32 in [-1, 1].
pub fn downmix_i16(interleaved: &[i16], channels: usize, out: &mut Vec<f32>) {
    let channels = channels.max(1);
    let scale = 1.0 / (channels as f32 * 32768.0);
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().map(|&s| f32::from(s)).sum::<f32>() * scale),
    );
}

impl Resampler {
    /// To 16 kHz mono (the features' rate) from `channels`-channel audio at `in_rate`.
    pub fn new(in_rate: u32, channels: u32) -> Self {
        // 16 kHz from any rate in the accepted range is always constructible; fall back to a pass-through
        // only if rubato ever refuses, which `with_rates` reports to callers that care.
        Self::with_rates(in_rate, SAMPLE_RATE, channels).unwrap_or_else(|_| Self {
            in_rate,
            out_rate: in_rate,
            channels: channels.max(1) as usize,
            fft: None,
            pending: Vec::new(),
            delay_left: 0,
            in_total: 0,
            out_total: 0,
            scratch_in: Vec::new(),
            scratch_out: Vec::new(),
            finished: false,
        })
    }

    /// From `in_rate` to `out_rate`; the input has `channels` interleaved channels (mixed to mono).
    pub fn with_rates(in_rate: u32, out_rate: u32, channels: u32) -> Result<Self, ResampleError> {
        let err = |reason: String| ResampleError::Construct {
            from: in_rate,
            to: out_rate,
            reason,
        };
        if in_rate == 0 || out_rate == 0 {
            return Err(err("rates must be positive".into()));
        }
        let fft = if in_rate == out_rate {
            None
        } else {
            let fft = Fft::<f32>::new(
                in_rate as usize,
                out_rate as usize,
                CHUNK,
                1,
                FixedSync::Input,
            )
            .map_err(|e| err(e.to_string()))?;
            Some(Box::new(fft))
        };
        let (delay, in_max, out_max) = match &fft {
            Some(f) => (
                f.output_delay(),
                f.input_frames_max(),
                f.output_frames_max(),
            ),
            None => (0, 0, 0),
        };
        Ok(Self {
            in_rate,
            out_rate,
            channels: channels.max(1) as usize,
            fft,
            pending: Vec::new(),
            delay_left: delay,
            in_total: 0,
            out_total: 0,
            scratch_in: vec![vec![0.0; in_max]],
            scratch_out: vec![vec![0.0; out_max]],
            finished: false,
        })
    }

    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Appends interleaved int16 samples; returns (appends to `out`) the mono output they complete.
    pub fn push_i16(&mut self, interleaved: &[i16], out: &mut Vec<f32>) {
        let mut mono = Vec::with_capacity(interleaved.len() / self.channels + 1);
        downmix_i16(interleaved, self.channels, &mut mono);
        self.push_mono(&mono, out);
    }

    /// Appends mono samples in [-1, 1].
    pub fn push_mono(&mut self, mono: &[f32], out: &mut Vec<f32>) {
        if self.finished {
            return;
        }
        self.in_total += mono.len() as u64;
        if self.fft.is_none() {
            out.extend_from_slice(mono);
            self.out_total += mono.len() as u64;
            return;
        }
        self.pending.extend_from_slice(mono);
        while let Some(fft) = &self.fft {
            let need = fft.input_frames_next();
            if self.pending.len() < need {
                break;
            }
            self.step(need, out);
        }
    }

    /// The input has ended: converts what is pending and the resampler's delayed tail.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.fft.is_none() {
            return;
        }
        let expected = (self.in_total as f64 * f64::from(self.out_rate) / f64::from(self.in_rate))
            .round() as u64;
        while self.out_total < expected {
            let Some(fft) = &self.fft else { break };
            let need = fft.input_frames_next();
            // Zero padding pushes the last real samples and the delayed tail through.
            self.pending.resize(need.max(self.pending.len()), 0.0);
            if !self.step(need, out) {
                break; // rubato refused the buffers: never loop forever
            }
        }
        let extra = self.out_total.saturating_sub(expected) as usize;
        out.truncate(out.len().saturating_sub(extra));
        self.out_total = expected;
    }

    /// Converts the first `take` pending samples. False when rubato refused (never expected).
    fn step(&mut self, take: usize, out: &mut Vec<f32>) -> bool {
        let Some(fft) = self.fft.as_mut() else {
            return false;
        };
        self.scratch_in[0][..take].copy_from_slice(&self.pending[..take]);
        self.pending.drain(..take);
        let frames_out = self.scratch_out[0].len();
        let (Ok(input), Ok(mut output)) = (
            SequentialSliceOfVecs::new(&self.scratch_in, 1, take),
            SequentialSliceOfVecs::new_mut(&mut self.scratch_out, 1, frames_out),
        ) else {
            return false;
        };
        let Ok((_, written)) = fft.process_into_buffer(&input, &mut output, None) else {
            return false;
        };
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        out.extend_from_slice(&self.scratch_out[0][skip..written]);
        self.out_total += (written - skip) as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f32, hz: f32) -> Vec<i16> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| {
                ((i as f32 * hz * std::f32::consts::TAU / rate as f32).sin() * 10_000.0) as i16
            })
            .collect()
    }

    #[test]
    fn lengths_are_exact_for_agent_rates() {
        for (rate, ch) in [
            (48_000, 2),
            (24_000, 1),
            (16_000, 1),
            (22_050, 1),
            (44_100, 2),
        ] {
            let mono = tone(rate, 1.37, 440.0);
            let input: Vec<i16> = mono
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, ch))
                .collect();
            let mut r = Resampler::new(rate, ch as u32);
            let mut out = Vec::new();
            for chunk in input.chunks(7_500 * ch) {
                r.push_i16(chunk, &mut out);
            }
            r.finish(&mut out);
            let expected = (mono.len() as f64 * 16_000.0 / rate as f64).round() as usize;
            assert_eq!(out.len(), expected, "{rate} Hz x{ch}");
        }
    }

    #[test]
    fn delay_is_trimmed_so_onsets_line_up() {
        // Silence, then a tone starting at exactly 0.5 s.
        let rate = 24_000;
        let mut input = vec![0i16; rate as usize / 2];
        input.extend(tone(rate, 0.5, 300.0));
        let mut r = Resampler::with_rates(rate, 16_000, 1).expect("resampler");
        let mut out = Vec::new();
        r.push_i16(&input, &mut out);
        r.finish(&mut out);
        let onset = out
            .iter()
            .position(|v| v.abs() > 0.05)
            .expect("tone present");
        assert!(
            (onset as i64 - 8_000).abs() <= 16,
            "onset at {onset}, expected 8000 (+-1 ms)"
        );
        let amp = out[10_000..14_000]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((amp - 10_000.0 / 32768.0).abs() < 0.02, "amplitude {amp}");
    }

    #[test]
    fn same_rate_passes_through() {
        let input = tone(16_000, 0.1, 200.0);
        let mut r = Resampler::new(16_000, 1);
        let mut out = Vec::new();
        r.push_i16(&input, &mut out);
        r.finish(&mut out);
        assert_eq!(out.len(), input.len());
        assert!((out[100] - f32::from(input[100]) / 32768.0).abs() < 1e-6);
    }
}
