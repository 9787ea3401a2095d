//! The DSP audio front end: mouth parameters from the speech envelope and a few spectral cues. No model; it is
//! the fallback and the yardstick for the trained network.
//!
//! Analysis: 25 ms Hann windows every 10 ms (sub-frames), 512-point FFT, band energies. Video frame `k` covers
//! samples `[640k, 640k + 640)`; its parameters use the four sub-frames centred inside it plus the next one
//! (anticipation), so it can be popped once audio up to `640(k+1) + 280` samples has arrived: a look-ahead of
//! [`LOOKAHEAD_SAMPLES`] = 280 samples = 17.5 ms beyond the end of the frame.
//!
//! Mapping:
//! - loudness: frame level in dB against a slowly decaying peak (adapts to the speaker's level); below
//!   [`SILENCE_DB`] dBFS the mouth is at rest, exactly;
//! - jaw: loudness, reduced for fricatives (energy above 3.5 kHz dominates);
//! - width / rounding: energy of the second-formant band (1.4-3 kHz) against the first (250-1000 Hz): high for
//!   spread vowels (/i/, /e/), low for rounded ones (/u/, /o/);
//! - closure: a level drop of more than ~5 dB below the last 120 ms inside speech (stop gap of /p/ /b/, or a
//!   smaller drop into a low voice bar), the first 280 ms after speech, or a nasal murmur (/m/: nearly all energy below
//!   500 Hz at moderate level) closes the lips; after 300 ms of silence closure relaxes to 0 (mouth at rest);
//! - one-pole smoothing with fast attack and slower release.

use super::frontend::{MouthFrontend, MouthParams, SAMPLE_RATE, SAMPLES_PER_FRAME};
use super::pcm::PcmBuffer;

const HOP: usize = 160;
const WIN: usize = 400;
const NFFT: usize = 512;
/// Samples of history before the first sub-frame's centre.
const PRE: usize = 120;
/// Audio needed past the end of a frame, samples.
pub const LOOKAHEAD_SAMPLES: usize = 4 * HOP + WIN - PRE - SAMPLES_PER_FRAME;
/// Frame level below which the mouth rests, dBFS.
pub const SILENCE_DB: f32 = -50.0;

#[derive(Debug, Clone, Copy, Default)]
struct SubFrame {
    power: f32,
    low: f32,
    f2: f32,
    high: f32,
    sub500: f32,
    total: f32,
}

/// See the module documentation.
pub struct DspFrontend {
    /// PCM not yet fully consumed (internal = external + PRE).
    pcm: PcmBuffer,
    subframes: Vec<SubFrame>,
    /// Index of the first sub-frame held in `subframes`.
    sub_start: usize,
    next_frame: usize,
    window: Vec<f32>,
    peak_db: f32,
    silent_frames: u32,
    /// Levels of the previous three frames, dB (newest last).
    recent: [f32; 3],
    state: MouthParams,
}

impl Default for DspFrontend {
    fn default() -> Self {
        Self::new()
    }
}

/// In-place radix-2 complex FFT (length a power of two). Shared with the network front end's log-mel.
pub(crate) fn fft(re: &mut [f32], im: &mut [f32]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f32::consts::PI / len as f32;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f32).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

impl DspFrontend {
    pub fn new() -> Self {
        let window = (0..WIN)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / (WIN - 1) as f32).cos())
            .collect();
        Self {
            pcm: PcmBuffer::new(PRE),
            subframes: Vec::new(),
            sub_start: 0,
            next_frame: 0,
            window,
            peak_db: -20.0,
            silent_frames: 1000,
            recent: [-100.0; 3],
            state: MouthParams::REST,
        }
    }

    fn analyse(&self, x: &[f32]) -> SubFrame {
        let mut re = [0.0f32; NFFT];
        let mut im = [0.0f32; NFFT];
        let mut power = 0.0;
        for i in 0..WIN {
            power += x[i] * x[i];
            re[i] = x[i] * self.window[i];
        }
        fft(&mut re, &mut im);
        let hz = SAMPLE_RATE as f32 / NFFT as f32;
        let mut f = SubFrame {
            power: power / WIN as f32,
            ..Default::default()
        };
        for k in 1..NFFT / 2 {
            let e = re[k] * re[k] + im[k] * im[k];
            let freq = k as f32 * hz;
            f.total += e;
            if (250.0..1000.0).contains(&freq) {
                f.low += e;
            }
            if (1400.0..3000.0).contains(&freq) {
                f.f2 += e;
            }
            if freq >= 3500.0 {
                f.high += e;
            }
            if freq < 500.0 {
                f.sub500 += e;
            }
        }
        f
    }

    fn analyse_available(&mut self) {
        loop {
            let m = self.sub_start + self.subframes.len();
            let (a, b) = (m * HOP, m * HOP + WIN);
            let Some(x) = self.pcm.window(a, b) else {
                break;
            };
            let sf = self.analyse(x);
            self.subframes.push(sf);
        }
    }

    fn frame_params(&mut self, k: usize) -> MouthParams {
        let first = 4 * k - self.sub_start;
        let subs = &self.subframes[first..first + 5];
        let w = [1.0, 1.0, 1.0, 1.0, 0.5];
        let mut acc = SubFrame::default();
        let mut wsum = 0.0;
        for (s, wt) in subs.iter().zip(w) {
            acc.power += s.power * wt;
            acc.low += s.low * wt;
            acc.f2 += s.f2 * wt;
            acc.high += s.high * wt;
            acc.sub500 += s.sub500 * wt;
            acc.total += s.total * wt;
            wsum += wt;
        }
        let level_db = 10.0 * (acc.power / wsum + 1e-10).log10();
        self.peak_db = level_db.max(self.peak_db - 0.25).max(-35.0);
        let reference = self.peak_db;
        let speaking = level_db > SILENCE_DB;
        let loud = if speaking {
            ((level_db - (reference - 32.0)) / 32.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let total = acc.total.max(1e-12);
        let fric = ((acc.high / total - 0.3) / 0.4).clamp(0.0, 1.0);
        let voiced = loud * (1.0 - fric);
        let r_db = 10.0 * ((acc.f2 + 1e-12) / (acc.low + 1e-12)).log10();
        // Nasal murmur: nearly all energy below 500 Hz and almost nothing in the second-formant band.
        let nasal = ((acc.sub500 / total - 0.82) / 0.1).clamp(0.0, 1.0)
            * ((-r_db - 14.0) / 8.0).clamp(0.0, 1.0)
            * f32::from(u8::from(level_db > reference - 30.0));
        // Lip closure inside speech (/b/, /p/, /m/): the level drops well below the last 120 ms, or drops a little
        // while the spectrum turns into a low voice bar / murmur.
        let recent_max = self.recent.iter().copied().fold(-100.0f32, f32::max);
        self.recent = [self.recent[1], self.recent[2], level_db];
        let drop = recent_max - level_db;
        let s500 = acc.sub500 / total;
        let stop = if recent_max > reference - 20.0 {
            ((drop - 5.0) / 6.0)
                .clamp(0.0, 1.0)
                .max(((s500 - 0.5) / 0.25).clamp(0.0, 1.0) * ((drop - 2.0) / 4.0).clamp(0.0, 1.0))
        } else {
            0.0
        };
        let nasal = nasal.max(stop);
        if loud > 0.25 {
            self.silent_frames = 0;
        } else {
            self.silent_frames = self.silent_frames.saturating_add(1);
        }
        let in_speech = self.silent_frames > 0 && self.silent_frames <= 7;
        let dip: f32 = if in_speech { 1.0 } else { 0.0 };
        let target = MouthParams {
            jaw_open: (loud.powf(1.8) * (1.0 - 0.7 * fric) * (1.0 - nasal)).clamp(0.0, 1.0),
            width: ((r_db + 7.5) / 6.0).clamp(-1.0, 1.0) * voiced,
            round: ((-r_db - 8.5) / 5.0).clamp(0.0, 1.0) * voiced,
            closure: dip.max(nasal),
        };
        let ease = |cur: f32, tgt: f32, up: f32, down: f32| {
            cur + (tgt - cur) * if tgt > cur { up } else { down }
        };
        let s = &mut self.state;
        s.jaw_open = ease(s.jaw_open, target.jaw_open, 0.75, 0.5);
        s.width = ease(s.width, target.width, 0.5, 0.5);
        s.round = ease(s.round, target.round, 0.5, 0.5);
        s.closure = ease(s.closure, target.closure, 0.85, 0.6);
        if !speaking && self.silent_frames > 7 {
            // Rest, exactly: silence never moves the mouth.
            *s = MouthParams::REST;
        }
        for v in [&mut s.jaw_open, &mut s.width, &mut s.round, &mut s.closure] {
            if v.abs() < 1e-3 {
                *v = 0.0;
            }
        }
        s.clamped()
    }

    fn frames_available(&self) -> usize {
        // Frame k needs sub-frames up to 4k + 4.
        let have = self.sub_start + self.subframes.len();
        if have < 5 { 0 } else { (have - 5) / 4 + 1 }
    }
}

impl MouthFrontend for DspFrontend {
    fn push(&mut self, pcm: &[f32]) {
        self.pcm.push(pcm);
        self.analyse_available();
    }

    fn pop(&mut self) -> Option<MouthParams> {
        if self.next_frame >= self.frames_available() {
            return None;
        }
        let k = self.next_frame;
        let p = self.frame_params(k);
        self.next_frame += 1;
        // Drop sub-frames and samples no later frame needs.
        let keep_sub = 4 * self.next_frame;
        if keep_sub > self.sub_start {
            let n = (keep_sub - self.sub_start).min(self.subframes.len());
            self.subframes.drain(..n);
            self.sub_start += n;
        }
        let keep_sample = (self.sub_start + self.subframes.len()) * HOP;
        self.pcm.discard_before(keep_sample);
        Some(p)
    }

    fn lookahead_ms(&self) -> f32 {
        LOOKAHEAD_SAMPLES as f32 * 1000.0 / SAMPLE_RATE as f32
    }

    fn flush(&mut self) {
        let frames = self.pcm.pushed().div_ceil(SAMPLES_PER_FRAME);
        if frames == 0 {
            return;
        }
        let need = (frames - 1) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME + LOOKAHEAD_SAMPLES + PRE;
        if self.pcm.pad_to(need) {
            self.analyse_available();
        }
    }

    fn reset(&mut self) {
        *self = Self::new();
    }

    fn ready(&self) -> usize {
        self.frames_available().saturating_sub(self.next_frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookahead_is_17_5_ms() {
        assert_eq!(LOOKAHEAD_SAMPLES, 280);
        assert!((DspFrontend::new().lookahead_ms() - 17.5).abs() < 1e-6);
    }

    #[test]
    fn frames_pop_after_the_lookahead() {
        let mut f = DspFrontend::new();
        f.push(&vec![0.0; SAMPLES_PER_FRAME + LOOKAHEAD_SAMPLES - 1]);
        assert!(f.pop().is_none());
        f.push(&[0.0]);
        assert_eq!(f.pop(), Some(MouthParams::REST));
        assert!(f.pop().is_none());
        f.push(&vec![0.0; 10 * SAMPLES_PER_FRAME]);
        let n = std::iter::from_fn(|| f.pop()).count();
        assert_eq!(n, 10);
        // 11 * 640 + 280 samples pushed: the partial twelfth frame comes out on flush.
        f.flush();
        assert_eq!(f.ready(), 1);
    }

    #[test]
    fn flush_releases_every_frame() {
        let mut f = DspFrontend::new();
        f.push(&vec![0.1; 1000]);
        f.flush();
        assert_eq!(std::iter::from_fn(|| f.pop()).count(), 2);
    }
}
