//! Streaming conversion of the agent's audio (any rate, interleaved channels, i16) to 16 kHz mono f32.
//!
//! Linear interpolation after a short moving-average low-pass (length = the decimation ratio): adequate for
//! envelope and band-energy features, not for listening.

use super::frontend::SAMPLE_RATE;

/// Streaming resampler to 16 kHz mono.
#[derive(Debug, Clone)]
pub struct Resampler {
    in_rate: u32,
    channels: usize,
    /// Input position (in input samples, relative to `hist[0]`) of the next output sample.
    pos: f64,
    hist: Vec<f32>,
    taps: usize,
    ma: std::collections::VecDeque<f32>,
    ma_sum: f32,
}

impl Resampler {
    pub fn new(in_rate: u32, channels: u32) -> Self {
        let taps = ((in_rate as f32 / SAMPLE_RATE as f32).round() as usize).max(1);
        Self {
            in_rate: in_rate.max(1),
            channels: channels.max(1) as usize,
            pos: 0.0,
            hist: Vec::new(),
            taps,
            ma: Default::default(),
            ma_sum: 0.0,
        }
    }

    /// Appends interleaved i16 samples; returns the 16 kHz mono samples they complete.
    pub fn push_i16(&mut self, interleaved: &[i16], out: &mut Vec<f32>) {
        for frame in interleaved.chunks_exact(self.channels) {
            let mono =
                frame.iter().map(|&s| s as f32).sum::<f32>() / (self.channels as f32 * 32768.0);
            self.ma.push_back(mono);
            self.ma_sum += mono;
            if self.ma.len() > self.taps {
                self.ma_sum -= self.ma.pop_front().unwrap_or(0.0);
            }
            self.hist.push(self.ma_sum / self.ma.len() as f32);
        }
        let step = self.in_rate as f64 / SAMPLE_RATE as f64;
        while self.pos + 1.0 < self.hist.len() as f64 {
            let i = self.pos as usize;
            let f = (self.pos - i as f64) as f32;
            out.push(self.hist[i] + (self.hist[i + 1] - self.hist[i]) * f);
            self.pos += step;
        }
        let drop = (self.pos as usize).min(self.hist.len());
        self.hist.drain(..drop);
        self.pos -= drop as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_convert_to_16k() {
        for (rate, ch) in [(48_000, 2), (24_000, 1), (16_000, 1), (22_050, 1)] {
            let mut r = Resampler::new(rate, ch);
            let mut out = Vec::new();
            let input = vec![1000i16; rate as usize * ch as usize]; // one second
            for chunk in input.chunks(480 * ch as usize) {
                r.push_i16(chunk, &mut out);
            }
            assert!(
                (out.len() as i64 - 16_000).abs() <= 2,
                "{rate}: {}",
                out.len()
            );
            assert!((out[8000] - 1000.0 / 32768.0).abs() < 1e-4);
        }
    }
}
