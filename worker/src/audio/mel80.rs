//! `mel80_wav2lip`: the log-mel spectrogram Wav2Lip's generator was trained on, computed incrementally over one
//! segment of 16 kHz audio, plus the per-video-frame windows its inference takes.
//!
//! The definition follows Wav2Lip's `audio.py` and `hparams.py` with the `librosa==0.7.0` it pinned:
//! pre-emphasis `y[n] = x[n] - 0.97 x[n-1]` (zero initial state, as `scipy.signal.lfilter`), an STFT with
//! `n_fft = win = 800`, `hop = 200`, a periodic Hann window, `center=True` with **reflect** padding of 400
//! samples at both ends (librosa 0.7's default `pad_mode`; librosa >= 0.10 pads with zeros instead, which
//! differs on the first and last two frames), the magnitude (power 1), 80 Slaney-scale mel filters 55-7600 Hz
//! with Slaney area normalisation, `20 log10(max(1e-5, m)) - 20`, then `clip(8 (S + 100) / 100 - 4, -4, 4)`.
//! The segment is treated as Wav2Lip treats a whole clip: its start and its end are reflected.
//!
//! Video frame `i` (at `fps`) takes mel frames `int(80 i / fps) + offset ..` (`window` of them); a window that
//! would pass the end of the segment is the last `window` frames, as in Wav2Lip's inference.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 800;
pub const HOP: usize = 200;
pub const N_MELS: usize = 80;
pub const FMIN: f64 = 55.0;
pub const FMAX: f64 = 7600.0;
pub const PREEMPHASIS: f64 = 0.97;
pub const REF_LEVEL_DB: f64 = 20.0;
pub const MIN_LEVEL_DB: f64 = -100.0;
pub const MAX_ABS: f64 = 4.0;
/// Mel frames per second (16000 / 200).
pub const MEL_FPS: u32 = SAMPLE_RATE / HOP as u32;

/// Hz -> mel on the Slaney scale (linear below 1 kHz, logarithmic above), as librosa with `htk=False`.
pub fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// Mel -> Hz, the inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// The 80 triangular filters over the 401 FFT bins, Slaney-normalised (each filter's area is constant): one
/// row of weights per band, as `librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)`.
pub fn mel_filters() -> Vec<Vec<f64>> {
    let bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|k| k as f64 * f64::from(SAMPLE_RATE) / N_FFT as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(FMIN), hz_to_mel(FMAX));
    let mel_f: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    (0..N_MELS)
        .map(|m| {
            let (f0, f1, f2) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
            let norm = 2.0 / (f2 - f0);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - f0) / (f1 - f0);
                    let upper = (f2 - f) / (f2 - f1);
                    lower.min(upper).max(0.0) * norm
                })
                .collect()
        })
        .collect()
}

/// Index into a signal of length `n` with numpy's `reflect` padding (the edge sample is not repeated),
/// periodic for pads longer than the signal.
fn reflect(i: i64, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let m = i.rem_euclid(period);
    (if m >= n as i64 { period - m } else { m }) as usize
}

/// One segment's mel spectrogram, computed as audio arrives.
pub struct Mel80 {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// Per band: first bin and the non-zero weights from there.
    filters: Vec<(usize, Vec<f64>)>,
    /// Pre-emphasised samples of the segment so far.
    y: Vec<f64>,
    prev: f64,
    ended: bool,
    /// Computed mel frames, each `N_MELS` normalised values.
    frames: Vec<[f32; N_MELS]>,
    frame_buf: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
}

impl Default for Mel80 {
    fn default() -> Self {
        Self::new()
    }
}

impl Mel80 {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        // Periodic Hann (scipy's get_window('hann', 800, fftbins=True), librosa's default window).
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / N_FFT as f64).cos())
            .collect();
        let filters = mel_filters()
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w > 0.0).unwrap_or(first);
                (first, row[first..=last].to_vec())
            })
            .collect();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            fft,
            window,
            filters,
            y: Vec::new(),
            prev: 0.0,
            ended: false,
            frames: Vec::new(),
            frame_buf: vec![0.0; N_FFT],
            spectrum,
            scratch,
        }
    }

    /// Forgets the segment.
    pub fn reset(&mut self) {
        self.y.clear();
        self.prev = 0.0;
        self.ended = false;
        self.frames.clear();
    }

    /// Appends 16 kHz samples and computes every frame that no longer depends on the end of the segment.
    pub fn push(&mut self, pcm: &[f32]) {
        if self.ended {
            return;
        }
        self.y.reserve(pcm.len());
        for &x in pcm {
            let x = f64::from(x);
            self.y.push(x - PREEMPHASIS * self.prev);
            self.prev = x;
        }
        // Frame j covers samples 200j-400 .. 200j+400; the first two also reflect samples up to 400.
        let n = self.y.len();
        while n > self.frames.len() * HOP + N_FFT / 2 {
            self.compute_next();
        }
    }

    /// The segment has no more audio: computes its last frames (the end reflected). `1 + n / 200` frames in all.
    pub fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if self.y.is_empty() {
            return;
        }
        let total = 1 + self.y.len() / HOP;
        while self.frames.len() < total {
            self.compute_next();
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Mel frames computed so far.
    pub fn frames(&self) -> &[[f32; N_MELS]] {
        &self.frames
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> usize {
        self.y.len()
    }

    fn compute_next(&mut self) {
        let j = self.frames.len() as i64;
        let n = self.y.len();
        let start = j * HOP as i64 - (N_FFT / 2) as i64;
        for (k, out) in self.frame_buf.iter_mut().enumerate() {
            *out = self.y[reflect(start + k as i64, n)] * self.window[k];
        }
        // The buffers have the sizes the plan asked for, so processing cannot fail; a zero frame if it did.
        if self
            .fft
            .process_with_scratch(&mut self.frame_buf, &mut self.spectrum, &mut self.scratch)
            .is_err()
        {
            self.spectrum
                .iter_mut()
                .for_each(|c| *c = Default::default());
        }
        let min_level = (MIN_LEVEL_DB / 20.0 * 10f64.ln()).exp();
        let mut frame = [0f32; N_MELS];
        for (out, (first, w)) in frame.iter_mut().zip(&self.filters) {
            let m: f64 = w
                .iter()
                .zip(&self.spectrum[*first..])
                .map(|(w, c)| w * c.norm())
                .sum();
            let db = 20.0 * m.max(min_level).log10() - REF_LEVEL_DB;
            let v = 2.0 * MAX_ABS * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS;
            *out = v.clamp(-MAX_ABS, MAX_ABS) as f32;
        }
        self.frames.push(frame);
    }

    /// First mel frame of video frame `i`'s window, before clamping to the segment (Wav2Lip:
    /// `int(80 * i / fps)`), plus `offset`.
    pub fn window_start(i: usize, fps: u32, offset: i32) -> i64 {
        (i as u64 * u64::from(MEL_FPS) / u64::from(fps.max(1))) as i64 + i64::from(offset)
    }

    /// Whether video frame `i`'s window of `len` mel frames is final (all its frames computed, or the segment
    /// ended).
    pub fn window_ready(&self, i: usize, fps: u32, offset: i32, len: usize) -> bool {
        self.ended || {
            let start = Self::window_start(i, fps, offset).max(0) as usize;
            self.frames.len() >= start + len
        }
    }

    /// Writes video frame `i`'s window, `[80, len]` row-major (band, time) as Wav2Lip's `[1, 80, 16]` input, into
    /// `out`. A window past the end is the last `len` frames; a segment shorter than the window is padded with
    /// silence (-4) at the end.
    pub fn window(&self, i: usize, fps: u32, offset: i32, len: usize, out: &mut [f32]) {
        let t = self.frames.len();
        let mut start = Self::window_start(i, fps, offset).max(0) as usize;
        if self.ended && start + len > t {
            start = t.saturating_sub(len);
        }
        for b in 0..N_MELS {
            for k in 0..len {
                out[b * len + k] = self.frames.get(start + k).map_or(-MAX_ABS as f32, |f| f[b]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips() {
        for hz in [0.0, 55.0, 700.0, 1000.0, 3000.0, 7600.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn filters_are_triangles_inside_the_band() {
        let f = mel_filters();
        assert_eq!(f.len(), 80);
        assert!(f.iter().all(|row| row.len() == 401));
        // No weight below fmin or above fmax.
        let bin_hz = 20.0;
        for row in &f {
            for (k, &w) in row.iter().enumerate() {
                if w > 0.0 {
                    assert!((k as f64) * bin_hz > FMIN && (k as f64) * bin_hz < FMAX);
                }
            }
        }
    }

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([0,1,2,3], 3, 'reflect') = [3,2,1,0,1,2,3,2,1,0]
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn streaming_equals_whole_segment() {
        let pcm: Vec<f32> = (0..9_137)
            .map(|n| (n as f32 * 0.05).sin() * 0.3 + ((n * 7919) % 101) as f32 / 1000.0)
            .collect();
        let mut whole = Mel80::new();
        whole.push(&pcm);
        whole.finish();
        let mut parts = Mel80::new();
        for chunk in pcm.chunks(333) {
            parts.push(chunk);
        }
        parts.finish();
        assert_eq!(whole.frames().len(), 1 + pcm.len() / HOP);
        assert_eq!(whole.frames(), parts.frames());
    }

    #[test]
    fn silence_is_the_floor_and_windows_clamp_at_the_end() {
        let mut m = Mel80::new();
        m.push(&vec![0.0; 16_000]);
        m.finish();
        assert!(m.frames().iter().flatten().all(|&v| v == -4.0));
        let t = m.frames().len();
        assert_eq!(t, 81);
        let mut w = vec![0.0; 80 * 16];
        // Frame 24 starts at int(3.2 * 24) = 76 > 81 - 16: the last 16 frames.
        assert!(m.window_ready(24, 25, 0, 16));
        m.window(24, 25, 0, 16, &mut w);
        assert_eq!(Mel80::window_start(24, 25, 0), 76);
        assert_eq!(Mel80::window_start(5, 25, 0), 16);
    }
}
