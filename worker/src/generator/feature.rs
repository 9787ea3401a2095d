//! The audio feature of a generator pack, computed as a segment's 16 kHz audio arrives: the built-in
//! `mel80_wav2lip` ([`Mel80`]) or the pack's `audio.onnx` ([`OnnxFeature`]), windowed per video frame.
//!
//! `audio.onnx` runs on fixed chunks (`chunk_ms`) with `context_ms` of audio either side, keeping the chunk's own
//! frames: every call costs the same whatever the segment's length (running it on the whole segment so far
//! would grow quadratically), and the look-ahead it adds is bounded: a feature frame is final once its chunk
//! and the right context have arrived.

use std::sync::{Arc, Mutex};

use crate::audio::mel80::{self, Mel80};
use crate::model::pack::AudioOnnxSpec;

use super::model::{AudioModel, GenerateError};

/// A segment's feature.
pub enum Feature {
    Mel(Mel80),
    Onnx(OnnxFeature),
}

impl Feature {
    pub fn reset(&mut self) {
        match self {
            Self::Mel(m) => m.reset(),
            Self::Onnx(o) => o.reset(),
        }
    }

    /// Appends audio (computing what it can; `audio.onnx` calls happen here).
    pub fn push(&mut self, pcm: &[f32]) -> Result<(), GenerateError> {
        match self {
            Self::Mel(m) => {
                m.push(pcm);
                Ok(())
            }
            Self::Onnx(o) => o.push(pcm),
        }
    }

    pub fn finish(&mut self) -> Result<(), GenerateError> {
        match self {
            Self::Mel(m) => {
                m.finish();
                Ok(())
            }
            Self::Onnx(o) => o.finish(),
        }
    }

    pub fn ended(&self) -> bool {
        match self {
            Self::Mel(m) => m.ended(),
            Self::Onnx(o) => o.ended,
        }
    }

    pub fn samples(&self) -> usize {
        match self {
            Self::Mel(m) => m.samples(),
            Self::Onnx(o) => o.pcm.len(),
        }
    }

    pub fn window_ready(&self, i: usize, fps: u32, offset: i32, len: usize) -> bool {
        match self {
            Self::Mel(m) => m.window_ready(i, fps, offset, len),
            Self::Onnx(o) => o.window_ready(i, fps, offset, len),
        }
    }

    /// Video frame `i`'s window: mel80 `[80, len]` (band, time), `audio.onnx` `[len, C]` (time, channel).
    pub fn window(&self, i: usize, fps: u32, offset: i32, len: usize, out: &mut [f32]) {
        match self {
            Self::Mel(m) => m.window(i, fps, offset, len, out),
            Self::Onnx(o) => o.window(i, fps, offset, len, out),
        }
    }
}

/// `audio.onnx` features of one segment.
pub struct OnnxFeature {
    model: Arc<Mutex<AudioModel>>,
    spec: AudioOnnxSpec,
    channels: usize,
    /// The segment's samples so far.
    pcm: Vec<f32>,
    /// Final features `[T, C]`, row-major.
    feats: Vec<f32>,
    chunks: usize,
    ended: bool,
    input: Vec<f32>,
}

impl OnnxFeature {
    pub fn new(model: Arc<Mutex<AudioModel>>, spec: AudioOnnxSpec) -> Self {
        let channels = model.lock().unwrap_or_else(|p| p.into_inner()).channels;
        Self {
            model,
            spec,
            channels,
            pcm: Vec::new(),
            feats: Vec::new(),
            chunks: 0,
            ended: false,
            input: Vec::new(),
        }
    }

    fn reset(&mut self) {
        self.pcm.clear();
        self.feats.clear();
        self.chunks = 0;
        self.ended = false;
    }

    /// Final features so far, `[T, C]` row-major.
    pub fn features(&self) -> &[f32] {
        &self.feats
    }

    /// Final feature frames so far.
    pub fn frames(&self) -> usize {
        self.feats.len() / self.channels.max(1)
    }

    fn push(&mut self, pcm: &[f32]) -> Result<(), GenerateError> {
        if self.ended {
            return Ok(());
        }
        self.pcm.extend_from_slice(pcm);
        let (chunk, ctx) = (self.spec.chunk_samples(), self.spec.context_samples());
        while self.pcm.len() >= (self.chunks + 1) * chunk + ctx {
            self.compute_next()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), GenerateError> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        let chunk = self.spec.chunk_samples();
        while self.chunks * chunk < self.pcm.len() {
            self.compute_next()?;
        }
        // Frames past the segment's last sample are padding.
        let total = self.pcm.len().div_ceil(self.spec.hop());
        self.feats.truncate(total * self.channels);
        Ok(())
    }

    /// Runs chunk `self.chunks` with its context (zeros outside the segment) and keeps its own frames.
    fn compute_next(&mut self) -> Result<(), GenerateError> {
        let (chunk, ctx, hop) = (
            self.spec.chunk_samples(),
            self.spec.context_samples(),
            self.spec.hop(),
        );
        let start = (self.chunks * chunk) as i64 - ctx as i64;
        self.input.clear();
        self.input.extend((0..chunk + 2 * ctx).map(|k| {
            let j = start + k as i64;
            if j < 0 {
                0.0
            } else {
                self.pcm.get(j as usize).copied().unwrap_or(0.0)
            }
        }));
        let out = self
            .model
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .run(&self.input)?;
        let c = self.channels;
        let first = ctx / hop;
        self.feats
            .extend_from_slice(&out[first * c..(first + chunk / hop) * c]);
        self.chunks += 1;
        Ok(())
    }

    /// First feature frame of video frame `i`'s window: `int(rate * i / fps) + offset`.
    pub fn window_start(rate: u32, i: usize, fps: u32, offset: i32) -> i64 {
        (i as u64 * u64::from(rate) / u64::from(fps.max(1))) as i64 + i64::from(offset)
    }

    fn window_ready(&self, i: usize, fps: u32, offset: i32, len: usize) -> bool {
        let end = Self::window_start(self.spec.rate, i, fps, offset) + len as i64;
        self.ended || self.frames() as i64 >= end.max(1)
    }

    /// `[len, C]`; frames before the segment's start or past its end are zeros (as MuseTalk pads its whisper
    /// features).
    fn window(&self, i: usize, fps: u32, offset: i32, len: usize, out: &mut [f32]) {
        let c = self.channels;
        let t = self.frames() as i64;
        let start = Self::window_start(self.spec.rate, i, fps, offset);
        for k in 0..len {
            let dst = &mut out[k * c..(k + 1) * c];
            let j = start + k as i64;
            if (0..t).contains(&j) {
                let j = j as usize;
                dst.copy_from_slice(&self.feats[j * c..(j + 1) * c]);
            } else {
                dst.fill(0.0);
            }
        }
    }
}

/// Samples a frame waits for beyond its own end, worst case over frame phases: the window's last feature frame
/// must be final (mel80: computed from 400 samples past its centre; `audio.onnx`: its chunk and the right
/// context have arrived).
pub fn window_lookahead_samples(
    audio: Option<&AudioOnnxSpec>,
    window: u32,
    offset: i32,
    fps: u32,
) -> f64 {
    let fps = fps.max(1);
    let frame = f64::from(mel80::SAMPLE_RATE) / f64::from(fps);
    let mut worst = 0f64;
    // Two seconds cover every phase of video frames against chunks up to 5 s apart well enough, and every
    // phase against mel hops exactly (25 FPS and 80 mel frames per second repeat every second).
    let phases = match audio {
        Some(a) => (fps as usize * a.chunk_ms.div_ceil(1000).max(1) as usize) * 2,
        None => fps as usize,
    };
    for i in 0..phases {
        let end = match audio {
            None => {
                let start = Mel80::window_start(i, fps, offset);
                (start + i64::from(window) - 1) as f64 * mel80::HOP as f64
                    + (mel80::N_FFT / 2) as f64
            }
            Some(a) => {
                let last = (OnnxFeature::window_start(a.rate, i, fps, offset) + i64::from(window)
                    - 1)
                .max(0) as usize;
                let chunk = a.chunk_samples();
                ((last * a.hop() / chunk + 1) * chunk + a.context_samples()) as f64
            }
        };
        worst = worst.max(end - (i as f64 + 1.0) * frame);
    }
    worst.max(0.0)
}
