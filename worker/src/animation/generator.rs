//! A generator pack's way to animate (`renderer = "generator"`): its networks, loaded once per worker and
//! shared by every animator ([`GeneratorAnimator`]); its warm-up, benchmark and test frame.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use lipcast_proto::StageTime;

use super::{Animation, AnimationError, Animator, PackContext, Timings, ms};
use crate::audio::{MouthParams, synth};
use crate::avatar::{PreparedPortrait, Renderer};
use crate::generator::animator::{AnimatorError, lookahead_ms, portrait_inputs};
use crate::generator::crop::{CropBox, Paster, Pixels, face_input};
use crate::generator::feature::{Feature, OnnxFeature};
use crate::generator::{AudioModel, GenerateModel, GeneratorAnimator, PrepareModel};
use crate::model::FileRole;
use crate::model::pack::GeneratorSpec;
use crate::model::{ModelPack, Runtime};

/// How long the warm-up and the test frame wait for the model's frames.
const WARMUP_WAIT: Duration = Duration::from_secs(60);
const TEST_FRAME_WAIT: Duration = Duration::from_secs(30);

/// A generator pack's networks.
pub struct Generator {
    spec: GeneratorSpec,
    model: Arc<Mutex<GenerateModel>>,
    /// The pack's `audio.onnx` (`audio_feature = "audio_onnx"`).
    audio: Option<Arc<Mutex<AudioModel>>>,
    /// The pack's `prepare.onnx`, with its per-portrait cache.
    prepare: Option<Arc<Mutex<PrepareModel>>>,
}

impl Generator {
    /// Loads the pack's `generate.onnx` and, when it has them, `audio.onnx` and `prepare.onnx`.
    pub fn load(
        runtime: &Runtime,
        pack: &ModelPack,
        spec: &GeneratorSpec,
    ) -> Result<Self, AnimationError> {
        Ok(Self {
            spec: spec.clone(),
            model: Arc::new(Mutex::new(GenerateModel::load(runtime, pack, spec)?)),
            audio: match pack.file(FileRole::Audio) {
                Ok(_) => Some(Arc::new(Mutex::new(AudioModel::load(runtime, pack, spec)?))),
                Err(_) => None,
            },
            prepare: match pack.file(FileRole::Prepare) {
                Ok(_) => Some(Arc::new(Mutex::new(PrepareModel::load(runtime, pack)?))),
                Err(_) => None,
            },
        })
    }

    /// The pack's generator contract.
    pub fn spec(&self) -> &GeneratorSpec {
        &self.spec
    }

    /// The pack's `prepare.onnx`, if it has one.
    pub fn prepare_model(&self) -> Option<Arc<Mutex<PrepareModel>>> {
        self.prepare.clone()
    }

    /// A fresh audio feature for one segment stream.
    pub fn new_feature(&self) -> Feature {
        match (&self.audio, self.spec.audio_onnx) {
            (Some(a), Some(a_spec)) => Feature::Onnx(OnnxFeature::new(a.clone(), a_spec)),
            _ => Feature::Mel(crate::audio::mel80::Mel80::new()),
        }
    }

    /// The animator itself (tests and benchmarks read its figures).
    pub fn generator_animator(
        &self,
        portrait: &PreparedPortrait,
        renderer: Renderer,
        fps: u32,
    ) -> Result<GeneratorAnimator, AnimationError> {
        Ok(GeneratorAnimator::new(
            self.model.clone(),
            self.new_feature(),
            self.prepare.as_deref(),
            &self.spec,
            portrait,
            renderer,
            fps,
        )?)
    }
}

impl Animation for Generator {
    fn audio_feature(&self) -> String {
        self.spec.audio_feature.to_string()
    }

    fn animator(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<Box<dyn Animator>, AnimationError> {
        Ok(Box::new(
            self.generator_animator(portrait, renderer, cx.fps)?,
        ))
    }

    /// Generates the first batches of half a second of speech (the first calls of a model are the slow ones)
    /// and prepares the portrait (`prepare.onnx`'s cache).
    fn warm_up(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<(), AnimationError> {
        let mut animator = self.generator_animator(portrait, renderer, cx.fps)?;
        animator.push_audio(&synth::syllables(0.5, 0));
        animator.end_of_audio();
        if !animator.wait_generated(WARMUP_WAIT) {
            return Err(AnimationError::Warmup(animator.failure().unwrap_or_else(
                || format!("timed out after {} s", WARMUP_WAIT.as_secs()),
            )));
        }
        for i in 0..4 {
            animator.speech_frame(i);
        }
        Ok(())
    }

    /// The real path, timed per stage on `iterations` frames of synthetic speech (rounded up to whole batches):
    /// the audio feature, the model calls (one per batch of `batch_size` frames), the paste-back onto the idle
    /// frame, and the I420 conversion. Stage times are per frame.
    fn benchmark(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        mut renderer: Renderer,
        iterations: usize,
    ) -> Result<Timings, AnimationError> {
        let spec = &self.spec;
        let batch = spec.batch_size as usize;
        let n = iterations.max(1).div_ceil(batch) * batch;
        let fps = cx.fps;
        let s = spec.face_size as usize;
        let w = spec.audio_window as usize;
        let px = Pixels {
            order: spec.channel_order,
            lo: spec.value_range[0],
            hi: spec.value_range[1],
        };
        let crop = CropBox::around(&portrait.landmarks, &spec.crop).ok_or(AnimatorError::NoCrop)?;
        let face = face_input(&portrait.image, &crop, s, &px);
        let sources = self
            .model
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sources();
        let constant = portrait_inputs(&sources, self.prepare.as_deref(), face, s)?;
        // The portrait was prepared at warm-up (cached since): report that call's time.
        let prepare_ms = self
            .prepare
            .as_ref()
            .map_or(0.0, |p| p.lock().unwrap_or_else(|e| e.into_inner()).run_ms);
        let paster = Paster::new(crop, s, px, &spec.paste);
        let speech = synth::syllables((n as f32 + 2.0) / fps as f32, 1);
        let t = Instant::now();
        let mut feature = self.new_feature();
        feature.push(&speech)?;
        feature.finish()?;
        let features = t.elapsed();
        let (mut generate, mut paste, mut convert) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut model = self.model.lock().unwrap_or_else(|p| p.into_inner());
        let wl = model.window_len();
        let mut audio_in = vec![0.0f32; batch * wl];
        let mut frame = None;
        let mut i420 = Vec::new();
        for first in (0..n).step_by(batch) {
            let t = Instant::now();
            audio_in.resize(batch * wl, 0.0);
            for k in 0..batch {
                feature.window(
                    first + k,
                    fps,
                    spec.audio_offset,
                    w,
                    &mut audio_in[k * wl..(k + 1) * wl],
                );
            }
            let out = model.run(batch, &mut audio_in, &constant)?;
            generate += t.elapsed();
            for (k, crop) in out.chunks_exact(3 * s * s).enumerate() {
                let t = Instant::now();
                let base = renderer.render(&MouthParams::REST, (first + k) as u64);
                let f = frame.get_or_insert_with(|| base.clone());
                f.rgba.copy_from_slice(&base.rgba);
                paster.paste(crop, f);
                paste += t.elapsed();
                let t = Instant::now();
                f.to_i420(&mut i420);
                convert += t.elapsed();
            }
        }
        let per = |d: Duration| ms(d) / n as f64;
        let stage = |name: &str, avg_ms: f64| StageTime {
            name: name.into(),
            avg_ms,
        };
        Ok(Timings {
            frames: n,
            frames_per_generate: batch as u32,
            per_frame: vec![
                stage("features", per(features)),
                stage("generate", per(generate)),
                stage("paste", per(paste)),
                stage("i420", per(convert)),
            ],
            other: vec![
                // Once per portrait, not per frame: the last prepare.onnx call (0 without one).
                stage("prepare_once", prepare_ms),
                stage("lookahead", f64::from(lookahead_ms(spec, fps))),
            ],
        })
    }

    /// Frame 12 of a second of synthetic speech, generated (not a fallback).
    fn test_frame(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<RgbImage, AnimationError> {
        let mut animator = self.generator_animator(portrait, renderer, cx.fps)?;
        animator.push_audio(&synth::syllables(1.0, 2));
        animator.end_of_audio();
        let mut frame = None;
        for i in 0..13u64 {
            if !animator.wait_generated(TEST_FRAME_WAIT) {
                return Err(AnimationError::TestFrame(
                    animator
                        .failure()
                        .unwrap_or_else(|| "the generator timed out".into()),
                ));
            }
            frame = Some(animator.speech_frame(i).to_rgb_image());
        }
        Ok(frame.unwrap_or_else(|| RgbImage::new(2, 2)))
    }

    fn as_generator(&self) -> Option<&Generator> {
        Some(self)
    }
}
