//! [`GeneratorAnimator`]: the real-time loop's [`Animator`] for a generator pack.
//!
//! A generation thread computes the segment's audio feature ([`Feature`]) as audio arrives and calls `generate.onnx` on
//! batches of `batch_size` frames as soon as their audio windows are complete, ahead of the audio clock but at
//! most [`GeneratorAnimator::budget_frames`] frames ahead of what the loop has shown (bounded memory, bounded
//! work thrown away by an interruption). The loop thread pastes each generated crop, feathered, onto the idle
//! frame of its index (the built-in renderer with the mouth at rest: blinks and head sway go on), so idle and
//! speech frames match.
//!
//! The loop never waits for the model once a segment is playing: a frame whose crop is not ready when its audio
//! plays shows the last generated crop again (or the mouth at rest) and counts as late
//! ([`Animator::late_frames`]); the generation thread skips the frames already shown. Only a segment's first
//! frame waits for the model ([`Animator::waits_for_model`]), so speech never starts on a fallback.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::animation::Animator;
use crate::audio::MouthParams;
use crate::audio::mel80;
use crate::avatar::{Frame, PreparedPortrait, Renderer};
use crate::model::pack::{AudioFeature, GeneratorSpec};

use super::crop::{CropBox, Paster, Pixels, face_input};
use super::feature::{Feature, window_lookahead_samples};
use super::model::{GenerateError, GenerateModel, PrepareModel, Source};

/// What the loop thread and the generation thread share.
#[derive(Default)]
struct State {
    /// Bumped by every reset; results of an older epoch are dropped.
    epoch: u64,
    /// 16 kHz audio not yet taken by the generation thread.
    audio: Vec<f32>,
    /// 16 kHz samples pushed in this segment.
    pushed: usize,
    ended: bool,
    /// Speech frames of this segment the loop has taken.
    consumed: usize,
    /// Generated crops `[3, S, S]` by frame number within the segment, in order.
    done: VecDeque<(usize, Vec<f32>)>,
    /// The model failed: every frame falls back (logged once).
    failed: Option<String>,
    quit: bool,
    /// Generated frames and the time spent in model calls (for figures).
    generated: u64,
    generate_time: Duration,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fixed inputs of one portrait for the generation thread.
struct Job {
    model: Arc<Mutex<GenerateModel>>,
    feature: Feature,
    /// The portrait's constant inputs of `generate.onnx` (face input, `prepare.onnx` outputs).
    portrait: Vec<Vec<f32>>,
    fps: u32,
    offset: i32,
    batch: usize,
    budget: usize,
    samples_per_frame: usize,
}

/// Animator of a `renderer = "generator"` pack.
pub struct GeneratorAnimator {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    renderer: Renderer,
    paster: Paster,
    frame: Frame,
    /// The last crop shown in this segment (a late frame holds it).
    last: Option<Vec<f32>>,
    late: u64,
    batch: usize,
    budget: usize,
    samples_per_frame: usize,
    lookahead_ms: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum AnimatorError {
    #[error("the portrait's face mesh gives no crop box")]
    NoCrop,
    #[error("starting the generation thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("{0}")]
    Prepare(#[from] GenerateError),
}

impl GeneratorAnimator {
    /// Frames generated ahead of the loop at most, in batches.
    pub const BUDGET_BATCHES: usize = 2;

    /// `prepare` runs (or takes from its cache) the pack's `prepare.onnx` on this portrait's crop.
    pub fn new(
        model: Arc<Mutex<GenerateModel>>,
        feature: Feature,
        prepare: Option<&Mutex<PrepareModel>>,
        spec: &GeneratorSpec,
        portrait: &PreparedPortrait,
        renderer: Renderer,
        fps: u32,
    ) -> Result<Self, AnimatorError> {
        let crop = CropBox::around(&portrait.landmarks, &spec.crop).ok_or(AnimatorError::NoCrop)?;
        let px = Pixels {
            order: spec.channel_order,
            lo: spec.value_range[0],
            hi: spec.value_range[1],
        };
        let s = spec.face_size as usize;
        let face = face_input(&portrait.image, &crop, s, &px);
        let sources = model.lock().unwrap_or_else(|p| p.into_inner()).sources();
        let portrait_inputs = portrait_inputs(&sources, prepare, face, s)?;
        let paster = Paster::new(crop, s, px, &spec.paste);
        let batch = spec.batch_size as usize;
        let budget = batch * Self::BUDGET_BATCHES;
        let samples_per_frame = (mel80::SAMPLE_RATE / fps.max(1)) as usize;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let job = Job {
            model,
            feature,
            portrait: portrait_inputs,
            fps,
            offset: spec.audio_offset,
            batch,
            budget,
            samples_per_frame,
        };
        let lookahead_ms = lookahead_ms(spec, fps);
        let thread = {
            let shared = shared.clone();
            let span = tracing::Span::current();
            std::thread::Builder::new()
                .name("lipcast-gen".into())
                .spawn(move || {
                    let _entered = span.enter();
                    generate_loop(&shared, job);
                })?
        };
        let (w, h) = renderer.size();
        Ok(Self {
            shared,
            thread: Some(thread),
            renderer,
            paster,
            frame: Frame {
                width: w,
                height: h,
                rgba: vec![0; (w * h * 4) as usize],
            },
            last: None,
            late: 0,
            batch,
            budget,
            samples_per_frame,
            lookahead_ms,
        })
    }

    /// The crop box in working-image pixels.
    pub fn crop(&self) -> CropBox {
        self.paster.crop
    }

    /// Frames the generation thread may render ahead of the loop.
    pub fn budget_frames(&self) -> usize {
        self.budget
    }

    /// Generated frames so far and the mean model time per frame, ms (wall clock of the calls / frames).
    pub fn generate_figures(&self) -> (u64, f64) {
        let st = self.shared.lock();
        let per = if st.generated > 0 {
            st.generate_time.as_secs_f64() * 1e3 / st.generated as f64
        } else {
            0.0
        };
        (st.generated, per)
    }

    /// Blocks until the next speech frame is generated (or `timeout`); true if it is. For warm-up and
    /// benchmarks, never the real-time loop.
    pub fn wait_generated(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if generated_ready(&st) > 0 {
                return true;
            }
            if st.failed.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .wake
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Model error, if generation failed.
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().failed.clone()
    }
}

/// The constant inputs of `generate.onnx` for one portrait, in `sources` order: the `[6, S, S]` face input
/// and `prepare.onnx`'s outputs (run once per portrait; its cache serves later sessions).
pub fn portrait_inputs(
    sources: &[Source],
    prepare: Option<&Mutex<PrepareModel>>,
    face: Vec<f32>,
    s: usize,
) -> Result<Vec<Vec<f32>>, GenerateError> {
    let prepared = match prepare {
        Some(p) if sources.iter().any(|s| matches!(s, Source::Prepare(_))) => {
            p.lock().unwrap_or_else(|p| p.into_inner()).run(&face, s)?
        }
        _ => Vec::new(),
    };
    sources
        .iter()
        .map(|src| match src {
            Source::Face => Ok(face.clone()),
            Source::Prepare(k) => {
                prepared
                    .get(*k)
                    .cloned()
                    .ok_or_else(|| GenerateError::Contract {
                        file: "prepare.onnx".into(),
                        reason: format!("has no output {k}"),
                    })
            }
        })
        .collect()
}

/// Audio past the end of a frame its crop depends on, plus the batching wait: the window's last feature frame
/// must be final (`feature::window_lookahead_samples`, worst case over frame phases), then `batch - 1` more
/// frames for the batch to fill.
pub fn lookahead_ms(spec: &GeneratorSpec, fps: u32) -> f32 {
    let fps = fps.max(1);
    let frame = f64::from(mel80::SAMPLE_RATE) / f64::from(fps);
    let audio = spec
        .audio_onnx
        .as_ref()
        .filter(|_| spec.audio_feature == AudioFeature::AudioOnnx);
    let worst = window_lookahead_samples(audio, spec.audio_window, spec.audio_offset, fps);
    let batching = f64::from(spec.batch_size.saturating_sub(1)) * frame;
    ((worst + batching) * 1000.0 / f64::from(mel80::SAMPLE_RATE)) as f32
}

/// Generated crops ready for the next frame, contiguous from it.
fn generated_ready(st: &State) -> usize {
    st.done
        .iter()
        .skip_while(|(i, _)| *i < st.consumed)
        .enumerate()
        .take_while(|(k, (i, _))| *i == st.consumed + k)
        .count()
}

fn generate_loop(shared: &Shared, mut job: Job) {
    let mut epoch = u64::MAX;
    let mut next = 0usize;
    let (s, w, wl) = {
        let m = job.model.lock().unwrap_or_else(|p| p.into_inner());
        (m.face_size, m.window, m.window_len())
    };
    let mut audio_in: Vec<f32> = Vec::new();
    // Duration of the last model call: when generation is behind, frames the loop will have shown before the
    // next call returns are not worth rendering.
    let mut last_took = Duration::ZERO;
    loop {
        let (first, n, this_epoch) = {
            let mut st = shared.lock();
            loop {
                if st.quit {
                    return;
                }
                if st.epoch != epoch {
                    epoch = st.epoch;
                    job.feature.reset();
                    next = 0;
                }
                if st.failed.is_none()
                    && (!st.audio.is_empty() || (st.ended && !job.feature.ended()))
                {
                    // audio.onnx may run here: not under the lock the loop thread takes every frame. A reset
                    // meanwhile is seen by the epoch check above, which drops what this pushed.
                    let audio = std::mem::take(&mut st.audio);
                    let end = st.ended;
                    drop(st);
                    let mut pushed = job.feature.push(&audio);
                    if pushed.is_ok() && end {
                        pushed = job.feature.finish();
                    }
                    st = shared.lock();
                    if let Err(e) = pushed {
                        tracing::error!(error = %e, "the audio feature failed; frames fall back to the portrait at rest");
                        st.failed = Some(e.to_string());
                        drop(st);
                        shared.wake.notify_all();
                        st = shared.lock();
                    }
                    continue;
                }
                // Frames the loop already showed (late), or will have shown before this call returns, are not
                // generated any more (never at a segment's start: the loop waits for its first frame).
                let lead = if st.consumed > 0 {
                    (last_took.as_secs_f64() * f64::from(job.fps)).ceil() as usize
                } else {
                    0
                };
                next = next.max(st.consumed + lead);
                let budget = job.budget.max(lead + job.batch);
                let ended = job.feature.ended();
                let total = ended.then(|| job.feature.samples().div_ceil(job.samples_per_frame));
                let mut n = 0;
                while n < job.batch
                    && total.is_none_or(|t| next + n < t)
                    && next + n < st.consumed + budget
                    && job.feature.window_ready(next + n, job.fps, job.offset, w)
                {
                    n += 1;
                }
                if st.failed.is_none() && n > 0 && (n == job.batch || ended) {
                    audio_in.resize(n * wl, 0.0);
                    for k in 0..n {
                        job.feature.window(
                            next + k,
                            job.fps,
                            job.offset,
                            w,
                            &mut audio_in[k * wl..(k + 1) * wl],
                        );
                    }
                    break (next, n, epoch);
                }
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let t0 = Instant::now();
        let result = job.model.lock().unwrap_or_else(|p| p.into_inner()).run(
            n,
            &mut audio_in,
            &job.portrait,
        );
        let took = t0.elapsed();
        last_took = took;
        next = first + n;
        let mut st = shared.lock();
        match result {
            Ok(out) if st.epoch == this_epoch => {
                let size = 3 * s * s;
                for (k, crop) in out.chunks_exact(size).enumerate() {
                    st.done.push_back((first + k, crop.to_vec()));
                }
                st.generated += n as u64;
                st.generate_time += took;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "the generator failed; frames fall back to the portrait at rest");
                st.failed = Some(e.to_string());
            }
        }
        drop(st);
        shared.wake.notify_all();
    }
}

impl Animator for GeneratorAnimator {
    fn size(&self) -> (u32, u32) {
        self.renderer.size()
    }

    fn push_audio(&mut self, pcm: &[f32]) {
        if pcm.is_empty() {
            return;
        }
        let mut st = self.shared.lock();
        st.audio.extend_from_slice(pcm);
        st.pushed += pcm.len();
        drop(st);
        self.shared.wake.notify_all();
    }

    fn end_of_audio(&mut self) {
        self.shared.lock().ended = true;
        self.shared.wake.notify_all();
    }

    fn ready(&self) -> usize {
        let st = self.shared.lock();
        let generated = generated_ready(&st);
        if generated > 0 {
            return generated;
        }
        // Once the segment plays (or the model failed), a frame whose audio is here is rendered anyway, late.
        let has_audio = st.pushed >= (st.consumed + 1) * self.samples_per_frame
            || (st.ended && st.pushed > st.consumed * self.samples_per_frame);
        usize::from(has_audio && (st.consumed > 0 || st.failed.is_some()))
    }

    fn waits_for_model(&self) -> bool {
        let st = self.shared.lock();
        st.consumed == 0 && st.failed.is_none() && st.pushed > 0 && generated_ready(&st) == 0
    }

    fn speech_frame(&mut self, index: u64) -> &Frame {
        let crop = {
            let mut st = self.shared.lock();
            let i = st.consumed;
            st.consumed += 1;
            while st.done.front().is_some_and(|(k, _)| *k < i) {
                st.done.pop_front();
            }
            match st.done.front() {
                Some((k, _)) if *k == i => st.done.pop_front().map(|(_, c)| c),
                _ => None,
            }
        };
        self.shared.wake.notify_all();
        let base = self.renderer.render(&MouthParams::REST, index);
        self.frame.rgba.copy_from_slice(&base.rgba);
        match crop {
            Some(c) => {
                self.paster.paste(&c, &mut self.frame);
                self.last = Some(c);
            }
            None => {
                self.late += 1;
                if let Some(c) = &self.last {
                    self.paster.paste(c, &mut self.frame);
                }
            }
        }
        &self.frame
    }

    fn idle_frame(&mut self, index: u64) -> &Frame {
        self.renderer.render(&MouthParams::REST, index)
    }

    fn reset(&mut self) {
        let mut st = self.shared.lock();
        st.epoch += 1;
        st.audio.clear();
        st.pushed = 0;
        st.ended = false;
        st.consumed = 0;
        st.done.clear();
        drop(st);
        self.last = None;
        self.shared.wake.notify_all();
    }

    fn lookahead_ms(&self) -> f32 {
        self.lookahead_ms
    }

    fn frames_per_generate(&self) -> u32 {
        self.batch as u32
    }

    fn late_frames(&self) -> u64 {
        self.late
    }
}

impl Drop for GeneratorAnimator {
    fn drop(&mut self) {
        self.shared.lock().quit = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the generation thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pack::{ChannelOrder, CropSpec, FaceInput, PasteRegion, PasteSpec};

    fn spec(batch: u32) -> GeneratorSpec {
        GeneratorSpec {
            face_size: 96,
            channel_order: ChannelOrder::Bgr,
            value_range: [0.0, 1.0],
            face_input: FaceInput::MaskedAndReference,
            audio_feature: AudioFeature::Mel80Wav2lip,
            audio_onnx: None,
            audio_window: 16,
            audio_offset: 0,
            batch_size: batch,
            crop: CropSpec {
                scale: 1.0,
                shift_down: 0.0,
            },
            paste: PasteSpec {
                feather: 0.1,
                region: PasteRegion::Full,
            },
        }
    }

    #[test]
    fn lookahead_of_wav2lip_windows() {
        // 16 mel frames from the frame's start: the window ends 15 hops + 400 samples after the frame's first
        // mel frame, i.e. 3400 samples after a frame that starts on a hop: 2760 past its end = 172.5 ms.
        assert!((lookahead_ms(&spec(1), 25) - 172.5).abs() < 0.01);
        // Batches of 4 wait for 3 more frames.
        assert!((lookahead_ms(&spec(4), 25) - 292.5).abs() < 0.01);
    }

    #[test]
    fn ready_counts_contiguous_crops_from_the_next_frame() {
        let mut st = State {
            consumed: 2,
            ..Default::default()
        };
        st.done
            .extend([(1, vec![]), (2, vec![]), (3, vec![]), (5, vec![])]);
        assert_eq!(generated_ready(&st), 2);
        st.consumed = 4;
        assert_eq!(generated_ready(&st), 0);
    }
}
