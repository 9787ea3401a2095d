//! The trained audio front end: streaming log-mel features and a small 1-D convolutional network (ONNX, role
//! `mouth` in the model pack) that maps 200 ms of them to one frame of mouth parameters.
//!
//! Features (the training script `scripts/mouth/common.py` computes exactly the same, and
//! `worker/tests/model_network.rs` checks that they agree): 25 ms symmetric Hann windows every 10 ms, 512-point FFT,
//! power spectrum, 40 triangular mel bands from 60 to 7600 Hz (HTK mel scale), natural log with a floor of 1e-10.
//! Mel frame `j` covers samples `[160j - 120, 160j + 280)` of the input (zeros before the first sample), so mel
//! frames `4k..4k+3` are centred inside video frame `k` (samples `[640k, 640k + 640)`).
//!
//! The network sees mel frames `4k - 12 ..= 4k + 7` (120 ms before the frame, the frame, 80 ms after its start)
//! and outputs jaw_open, width, round, closure. Frame `k` can therefore be popped once audio up to
//! `640(k + 1) + 760` has arrived: a look-ahead of [`LOOKAHEAD_SAMPLES`] = 760 samples = 47.5 ms past the end of the
//! frame. The look-ahead is what lets the lips close *before* the burst of a /b/ or /p/ and round ahead of a /u/,
//! as real speakers do. Before the first sample the context is what digital silence gives (the floor).
//!
//! Silence gate: when all 20 mel frames of a window are below [`GATE_DB`] dBFS (mean power of the raw samples), the
//! frame is [`MouthParams::REST`] exactly, without running the network. The network itself learned to rest on
//! silence and noise; the gate makes room tone bit-exact (no idle jitter) and saves the inference.

use std::collections::VecDeque;
use std::path::Path;

use ndarray::Array3;
use ort::{session::Session, value::TensorRef};

use super::dsp::fft;
use super::frontend::{MouthFrontend, MouthParams, SAMPLE_RATE, SAMPLES_PER_FRAME};
use super::pcm::{PcmBuffer, sanitize};
use crate::model::{FileRole, ModelPack, PackError, Runtime, RuntimeError};

/// Hop between mel frames, samples (10 ms).
pub const HOP: usize = 160;
/// Analysis window, samples (25 ms).
pub const WIN: usize = 400;
/// FFT size.
pub const NFFT: usize = 512;
/// Mel bands.
pub const NMEL: usize = 40;
/// Lowest and highest mel band edge, Hz.
pub const FMIN: f64 = 60.0;
pub const FMAX: f64 = 7600.0;
/// Zeros before the first sample, so that mel frame 0 is centred at sample 80.
pub const PRE: usize = 120;
/// Floor of the band power before the log.
pub const LOG_FLOOR: f32 = 1e-10;
/// Mel frames of context before the first mel frame of a video frame.
pub const CTX_PAST: usize = 12;
/// Mel frames from the first mel frame of a video frame on (4 inside it, 4 after it).
pub const CTX_FUTURE: usize = 8;
/// Mel frames per network input window (200 ms).
pub const WINDOW: usize = CTX_PAST + CTX_FUTURE;
/// Mel frames per video frame.
const MELS_PER_FRAME: usize = SAMPLES_PER_FRAME / HOP;
/// Audio needed past the end of a frame before it can be popped, samples.
pub const LOOKAHEAD_SAMPLES: usize = HOP * (CTX_FUTURE - 1) + WIN - PRE - SAMPLES_PER_FRAME;
/// Below this level (dBFS, mean power over each 25 ms window) in every frame of its context, a frame is at rest.
pub const GATE_DB: f32 = -60.0;

/// Why the network front end cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "the network audio front end needs a file with role \"mouth\" in the model pack (use AUDIO_FRONTEND=dsp without one): {0}"
    )]
    MissingModel(#[source] PackError),
    #[error("loading the mouth network: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("mouth network {path}: {reason}")]
    Model { path: String, reason: String },
}

/// Streaming log-mel analysis (see the module documentation).
pub struct LogMel {
    window: Vec<f32>,
    /// `[NMEL]` filters as (first FFT bin, weights).
    filters: Vec<(usize, Vec<f32>)>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

impl LogMel {
    pub fn new() -> Self {
        let window = (0..WIN)
            .map(|i| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (WIN - 1) as f64).cos())
                    as f32
            })
            .collect();
        let (lo, hi) = (hz_to_mel(FMIN), hz_to_mel(FMAX));
        let edges: Vec<f64> = (0..NMEL + 2)
            .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (NMEL + 1) as f64))
            .collect();
        let filters = (0..NMEL)
            .map(|b| {
                let (l, c, h) = (edges[b], edges[b + 1], edges[b + 2]);
                let w: Vec<(usize, f32)> = (0..=NFFT / 2)
                    .filter_map(|k| {
                        let f = k as f64 * SAMPLE_RATE as f64 / NFFT as f64;
                        let v = ((f - l) / (c - l)).min((h - f) / (h - c));
                        (v > 0.0).then_some((k, v as f32))
                    })
                    .collect();
                let first = w.first().map_or(0, |x| x.0);
                (first, w.into_iter().map(|x| x.1).collect())
            })
            .collect();
        Self { window, filters }
    }

    /// Log-mel of one 400-sample window, and its mean power (for the silence gate).
    pub fn frame(&self, x: &[f32]) -> ([f32; NMEL], f32) {
        let mut re = [0.0f32; NFFT];
        let mut im = [0.0f32; NFFT];
        let mut power = 0.0f32;
        for i in 0..WIN.min(x.len()) {
            power += x[i] * x[i];
            re[i] = x[i] * self.window[i];
        }
        fft(&mut re, &mut im);
        let mut out = [0.0f32; NMEL];
        for (o, (first, w)) in out.iter_mut().zip(&self.filters) {
            let e: f32 = w
                .iter()
                .enumerate()
                .map(|(i, wt)| {
                    let k = first + i;
                    wt * (re[k] * re[k] + im[k] * im[k])
                })
                .sum();
            *o = e.max(LOG_FLOOR).ln();
        }
        (out, power / WIN as f32)
    }

    /// Features of a whole clip exactly as the training script computes them (and as the streaming front end
    /// sees them): `4 * ceil(len / 640) + 8` mel frames, zeros past the end.
    pub fn clip(&self, pcm: &[f32]) -> Vec<[f32; NMEL]> {
        let frames = pcm.len().div_ceil(SAMPLES_PER_FRAME);
        let n_mel = MELS_PER_FRAME * frames + CTX_FUTURE;
        let need = HOP * (n_mel - 1) + WIN;
        let mut x = vec![0.0f32; need.max(PRE + pcm.len())];
        for (d, s) in x[PRE..].iter_mut().zip(pcm) {
            *d = sanitize(*s);
        }
        (0..n_mel)
            .map(|j| self.frame(&x[HOP * j..HOP * j + WIN]).0)
            .collect()
    }
}

/// The floor vector: what digital silence gives.
pub fn floor_frame() -> [f32; NMEL] {
    [LOG_FLOOR.ln(); NMEL]
}

/// See the module documentation.
pub struct NetworkFrontend {
    session: Session,
    input: String,
    output: String,
    mel: LogMel,
    /// PCM not yet consumed (internal = external + PRE).
    pcm: PcmBuffer,
    /// Log-mel frames from index `mel_start` on, with their mean power.
    mels: VecDeque<([f32; NMEL], f32)>,
    mel_start: usize,
    next_frame: usize,
    gate: bool,
    warned: bool,
}

impl NetworkFrontend {
    /// Loads the `mouth` file of `pack` and checks it against the manifest and the feature layout.
    pub fn load(runtime: &Runtime, pack: &ModelPack) -> Result<Self, NetworkError> {
        let file = pack
            .file(FileRole::Mouth)
            .map_err(NetworkError::MissingModel)?;
        let path = pack
            .path(FileRole::Mouth)
            .map_err(NetworkError::MissingModel)?;
        let (input, output) = match (file.inputs.first(), file.outputs.first()) {
            (Some(i), Some(o)) => (i.name.clone(), o.name.clone()),
            _ => {
                return Err(NetworkError::Model {
                    path: path.display().to_string(),
                    reason: "the manifest entry must declare its input and output".into(),
                });
            }
        };
        let want_in = [-1, WINDOW as i64, NMEL as i64];
        if file.inputs[0].shape.len() != 3 || file.inputs[0].shape[1..] != want_in[1..] {
            return Err(NetworkError::Model {
                path: path.display().to_string(),
                reason: format!(
                    "input shape {:?} does not fit the built-in features (expected {want_in:?})",
                    file.inputs[0].shape
                ),
            });
        }
        if file.outputs[0].shape.last() != Some(&4) {
            return Err(NetworkError::Model {
                path: path.display().to_string(),
                reason: format!(
                    "output shape {:?} must end in 4 (jaw_open, width, round, closure)",
                    file.outputs[0].shape
                ),
            });
        }
        let loaded = runtime.load(&path)?;
        Self::from_session(loaded.session, &input, &output, &path)
    }

    /// Wraps an already created session (checked for the tensor names).
    pub fn from_session(
        session: Session,
        input: &str,
        output: &str,
        path: &Path,
    ) -> Result<Self, NetworkError> {
        let has_in = session.inputs().iter().any(|i| i.name() == input);
        let has_out = session.outputs().iter().any(|o| o.name() == output);
        if !(has_in && has_out) {
            return Err(NetworkError::Model {
                path: path.display().to_string(),
                reason: format!(
                    "the ONNX file has no input {input:?} or output {output:?} as the manifest says"
                ),
            });
        }
        let mut s = Self {
            session,
            input: input.to_string(),
            output: output.to_string(),
            mel: LogMel::new(),
            pcm: PcmBuffer::new(PRE),
            mels: VecDeque::new(),
            mel_start: 0,
            next_frame: 0,
            gate: true,
            warned: false,
        };
        s.clear();
        Ok(s)
    }

    /// Turns the silence gate off (the raw network output on every frame); used to compare with the training
    /// framework and to report the network alone.
    pub fn with_gate(mut self, gate: bool) -> Self {
        self.gate = gate;
        self
    }

    fn clear(&mut self) {
        self.pcm.clear();
        self.mels.clear();
        self.mel_start = 0;
        self.next_frame = 0;
    }

    fn analyse_available(&mut self) {
        loop {
            let j = self.mel_start + self.mels.len();
            let (a, b) = (HOP * j, HOP * j + WIN);
            let Some(x) = self.pcm.window(a, b) else {
                break;
            };
            let f = self.mel.frame(x);
            self.mels.push_back(f);
        }
    }

    fn frames_available(&self) -> usize {
        // Frame k needs mel frames up to 4k + 7.
        let have = self.mel_start + self.mels.len();
        if have < CTX_FUTURE {
            0
        } else {
            (have - CTX_FUTURE) / MELS_PER_FRAME + 1
        }
    }

    /// The network input for frame `k` and whether its whole context is below the gate.
    fn window(&self, k: usize) -> (Array3<f32>, bool) {
        let gate_power = 10f32.powf(GATE_DB / 10.0);
        let mut x = Array3::<f32>::zeros((1, WINDOW, NMEL));
        let mut silent = true;
        let floor = floor_frame();
        for t in 0..WINDOW {
            // Mel index 4k - 12 + t; before the clip: digital silence.
            let j = (MELS_PER_FRAME * k + t).checked_sub(CTX_PAST);
            let (frame, power) = match j {
                Some(j) if j >= self.mel_start => self.mels[j - self.mel_start],
                _ => (floor, 0.0),
            };
            silent &= power < gate_power;
            for (b, v) in frame.iter().enumerate() {
                x[[0, t, b]] = *v;
            }
        }
        (x, silent)
    }

    fn infer(&mut self, x: &Array3<f32>) -> Result<MouthParams, ort::Error> {
        let out = self
            .session
            .run(ort::inputs![self.input.as_str() => TensorRef::from_array_view(x.view())?])?;
        let (_, y) = out[self.output.as_str()].try_extract_tensor::<f32>()?;
        if y.len() < 4 {
            return Err(ort::Error::new(format!(
                "mouth network returned {} values, expected 4",
                y.len()
            )));
        }
        Ok(MouthParams {
            jaw_open: y[0],
            width: y[1],
            round: y[2],
            closure: y[3],
        }
        .clamped())
    }
}

impl MouthFrontend for NetworkFrontend {
    fn push(&mut self, pcm: &[f32]) {
        self.pcm.push(pcm);
        self.analyse_available();
    }

    fn pop(&mut self) -> Option<MouthParams> {
        if self.next_frame >= self.frames_available() {
            return None;
        }
        let k = self.next_frame;
        let (x, silent) = self.window(k);
        let p = if self.gate && silent {
            MouthParams::REST
        } else {
            match self.infer(&x) {
                Ok(p) => p,
                Err(e) => {
                    // A failed inference must not stop the video: rest for this frame, say so once.
                    if !self.warned {
                        tracing::warn!("mouth network inference failed, resting the mouth: {e}");
                        self.warned = true;
                    }
                    MouthParams::REST
                }
            }
        };
        self.next_frame += 1;
        // Drop mel frames and samples no later frame needs.
        let keep_mel = (MELS_PER_FRAME * self.next_frame).saturating_sub(CTX_PAST);
        while self.mel_start < keep_mel && !self.mels.is_empty() {
            self.mels.pop_front();
            self.mel_start += 1;
        }
        let keep_sample = HOP * (self.mel_start + self.mels.len());
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
        let need = HOP * (MELS_PER_FRAME * (frames - 1) + CTX_FUTURE - 1) + WIN;
        if self.pcm.pad_to(need) {
            self.analyse_available();
        }
    }

    fn reset(&mut self) {
        self.clear();
    }

    fn ready(&self) -> usize {
        self.frames_available().saturating_sub(self.next_frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookahead_is_47_5_ms() {
        assert_eq!(LOOKAHEAD_SAMPLES, 760);
        assert_eq!(WINDOW, 20);
    }

    #[test]
    fn clip_features_have_the_padding_of_the_training_script() {
        let m = LogMel::new();
        let f = m.clip(&vec![0.0; 641]);
        assert_eq!(f.len(), 4 * 2 + 8);
        assert!(f.iter().flatten().all(|v| *v == LOG_FLOOR.ln()));
        let tone: Vec<f32> = (0..6400)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let f = m.clip(&tone);
        // 1 kHz lands in one band near the middle of the mel range, loudest there.
        let mid = &f[20];
        let best = (0..NMEL)
            .max_by(|a, b| mid[*a].total_cmp(&mid[*b]))
            .unwrap_or(0);
        let centre = |b: usize| {
            mel_to_hz(hz_to_mel(FMIN) + (hz_to_mel(FMAX) - hz_to_mel(FMIN)) * (b + 1) as f64 / 41.0)
        };
        assert!(
            (centre(best) - 1000.0).abs() < 150.0,
            "band {best} at {}",
            centre(best)
        );
    }
}
