//! A worker's loaded model: the ONNX Runtime on its device, the verified pack, the face models and the shipped
//! default portrait, prepared once (`Prepare`) and shared by the session, `/benchmark` and `/test-frame`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lipcast_proto::{PrepareReply, PrepareRequest};

use crate::audio::{FrontendError, FrontendKind, MouthFrontend, build_frontend};
use crate::avatar::render::RenderOptions;
use crate::avatar::{FaceModels, PrepareError, PrepareOptions, PreparedPortrait, Renderer};
use crate::generator::feature::{Feature, OnnxFeature};
use crate::generator::{
    AudioModel, GenerateError, GenerateModel, GeneratorAnimator, PrepareModel,
    animator::AnimatorError,
};
use crate::model::pack::GeneratorSpec;
use crate::model::{Device, ModelPack, Runtime, RuntimeConfig};
use crate::session::animator::{Animator, WarpAnimator};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Runtime(#[from] crate::model::RuntimeError),
    #[error("{0}")]
    Pack(#[from] crate::model::PackError),
    #[error("{0}")]
    Face(#[from] PrepareError),
    #[error("the shipped default portrait models/portraits/default.jpg is missing")]
    NoDefaultPortrait,
    #[error("reading the default portrait: {0}")]
    Io(#[from] std::io::Error),
    #[error("audio front end: {0}")]
    Frontend(#[from] FrontendError),
    #[error("{0}")]
    Generate(#[from] GenerateError),
    #[error("{0}")]
    Animator(#[from] AnimatorError),
    #[error("pack {0} is a generator pack; this needs the built-in warp renderer")]
    NotWarp(String),
    #[error("pack {0} is not a generator pack")]
    NotGenerator(String),
    #[error("the generator did not render its first frames: {0}")]
    Warmup(String),
}

/// How a pack renders.
enum Render {
    /// The built-in landmark warp, driven by a mouth front end.
    Warp,
    /// A neural generator (`renderer = "generator"`); one model shared by every animator of this worker.
    Generator {
        spec: GeneratorSpec,
        model: Arc<Mutex<GenerateModel>>,
        /// The pack's `audio.onnx` (`audio_feature = "audio_onnx"`).
        audio: Option<Arc<Mutex<AudioModel>>>,
        /// The pack's `prepare.onnx`, with its per-portrait cache.
        prepare: Option<Arc<Mutex<PrepareModel>>>,
    },
}

pub struct Prepared {
    pack: ModelPack,
    face: Mutex<FaceModels>,
    default_portrait: PreparedPortrait,
    options: PrepareOptions,
    frontend: FrontendKind,
    fps: u32,
    render: Render,
    pub reply: PrepareReply,
    runtime: Runtime,
}

impl Prepared {
    /// Loads and verifies everything, and warms up: the face models run on the default portrait and a few
    /// frames are rendered.
    pub fn load(req: &PrepareRequest) -> Result<Self, LoadError> {
        let t0 = Instant::now();
        let device: Device = if req.device.is_empty() {
            Device::Auto
        } else {
            req.device.parse()?
        };
        let runtime = Runtime::new(RuntimeConfig {
            device,
            intra_threads: req.intra_threads.max(1) as usize,
        })?;
        let pack = if req.pack_dir.is_empty() {
            ModelPack::builtin()?
        } else {
            ModelPack::load(Path::new(&req.pack_dir))?
        };
        let render = match &pack.manifest.generator {
            Some(spec) => Render::Generator {
                spec: spec.clone(),
                model: Arc::new(Mutex::new(GenerateModel::load(&runtime, &pack, spec)?)),
                audio: match pack.file("audio") {
                    Ok(_) => Some(Arc::new(Mutex::new(AudioModel::load(
                        &runtime, &pack, spec,
                    )?))),
                    Err(_) => None,
                },
                prepare: match pack.file("prepare") {
                    Ok(_) => Some(Arc::new(Mutex::new(PrepareModel::load(&runtime, &pack)?))),
                    Err(_) => None,
                },
            },
            None => Render::Warp,
        };
        // A generator pack computes its own audio feature; AUDIO_FRONTEND applies to the warp renderer only.
        let frontend = match render {
            Render::Warp => FrontendKind::resolve(Some(&req.audio_frontend), &pack)?,
            Render::Generator { .. } => FrontendKind::Dsp,
        };
        // Build it once now, so a pack without the file it needs fails here, not at a launch.
        drop(build_frontend(frontend, &runtime, &pack)?);
        let max_long_side = if req.max_long_side >= 64 {
            req.max_long_side & !1
        } else {
            pack.manifest.output.max_long_side
        };
        let options = PrepareOptions { max_long_side };
        // A generator pack may bring its own face models; without them it uses the built-in pack's.
        let mut face = if pack.file("face_detector").is_ok() && pack.file("face_mesh").is_ok() {
            FaceModels::load(&runtime, &pack)?
        } else {
            FaceModels::load(&runtime, &ModelPack::builtin()?)?
        };
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;

        let t1 = Instant::now();
        let path = crate::model::pack::default_portrait().ok_or(LoadError::NoDefaultPortrait)?;
        let bytes = std::fs::read(path)?;
        let default_portrait = face.prepare(&bytes, &options)?;
        let device = runtime
            .active_device()
            .map_or("cpu", |d| d.as_str())
            .to_owned();
        let fps = pack.manifest.fps;
        let prepared = Self {
            reply: PrepareReply {
                device,
                pack_name: pack.manifest.name.clone(),
                pack_version: pack.manifest.version.clone(),
                load_ms,
                warmup_ms: 0.0,
                cpu: crate::procstat::cpu_model(),
                gpu: String::new(),
                audio_frontend: match &render {
                    Render::Warp => frontend.to_string(),
                    Render::Generator { spec, .. } => spec.audio_feature.clone(),
                },
            },
            pack,
            face: Mutex::new(face),
            default_portrait,
            options,
            frontend,
            fps,
            render,
            runtime,
        };
        // Warm the render path (caches, allocator, the generator's first calls) so the first session frame is
        // not the slow one.
        let speech = crate::audio::synth::syllables(0.5, 0);
        if prepared.is_generator() {
            let mut animator = prepared.generator_animator(&prepared.default_portrait, 0)?;
            animator.push_audio(&speech);
            animator.end_of_audio();
            if !animator.wait_generated(Duration::from_secs(60)) {
                return Err(LoadError::Warmup(
                    animator
                        .failure()
                        .unwrap_or_else(|| "timed out after 60 s".into()),
                ));
            }
            for i in 0..4 {
                animator.speech_frame(i);
            }
        } else {
            let mut animator = prepared.animator(&prepared.default_portrait, 0)?;
            animator.push_audio(&speech);
            animator.end_of_audio();
            for i in 0..4 {
                animator.speech_frame(i);
            }
        }
        let mut prepared = prepared;
        prepared.reply.warmup_ms = t1.elapsed().as_secs_f64() * 1e3;
        Ok(prepared)
    }

    pub fn pack(&self) -> &ModelPack {
        &self.pack
    }

    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// True for a `renderer = "generator"` pack.
    pub fn is_generator(&self) -> bool {
        matches!(self.render, Render::Generator { .. })
    }

    /// The generator contract of the pack, if it is a generator pack.
    pub fn generator_spec(&self) -> Option<&GeneratorSpec> {
        match &self.render {
            Render::Generator { spec, .. } => Some(spec),
            Render::Warp => None,
        }
    }

    pub fn default_portrait(&self) -> &PreparedPortrait {
        &self.default_portrait
    }

    /// Prepares encoded portrait bytes (empty: the shipped default).
    pub fn prepare_portrait(&self, bytes: &[u8]) -> Result<PreparedPortrait, PrepareError> {
        if bytes.is_empty() {
            return Ok(self.default_portrait.clone());
        }
        let mut face = self.face.lock().unwrap_or_else(|p| p.into_inner());
        face.prepare(bytes, &self.options)
    }

    fn mouth_frontend(&self) -> Result<Box<dyn MouthFrontend>, LoadError> {
        Ok(build_frontend(self.frontend, &self.runtime, &self.pack)?)
    }

    /// A fresh animator for `portrait`.
    pub fn animator(
        &self,
        portrait: &PreparedPortrait,
        seed: u64,
    ) -> Result<Box<dyn Animator>, LoadError> {
        Ok(match self.render {
            Render::Warp => Box::new(self.warp_animator(portrait, seed)?),
            Render::Generator { .. } => Box::new(self.generator_animator(portrait, seed)?),
        })
    }

    fn renderer(&self, portrait: &PreparedPortrait, seed: u64) -> Renderer {
        Renderer::new(
            portrait,
            RenderOptions {
                seed,
                fps: self.fps,
                idle_motion: true,
            },
        )
    }

    /// The generator pack's animator (benchmarks read its figures).
    pub fn generator_animator(
        &self,
        portrait: &PreparedPortrait,
        seed: u64,
    ) -> Result<GeneratorAnimator, LoadError> {
        let Render::Generator {
            spec,
            model,
            prepare,
            ..
        } = &self.render
        else {
            return Err(LoadError::NotGenerator(self.pack.manifest.name.clone()));
        };
        Ok(GeneratorAnimator::new(
            model.clone(),
            self.new_feature()?,
            prepare.as_deref(),
            spec,
            portrait,
            self.renderer(portrait, seed),
            self.fps,
        )?)
    }

    /// A fresh audio feature of the generator pack for one segment stream.
    pub fn new_feature(&self) -> Result<Feature, LoadError> {
        let Render::Generator { spec, audio, .. } = &self.render else {
            return Err(LoadError::NotGenerator(self.pack.manifest.name.clone()));
        };
        Ok(match (audio, spec.audio_onnx) {
            (Some(a), Some(a_spec)) => Feature::Onnx(OnnxFeature::new(a.clone(), a_spec)),
            _ => Feature::Mel(crate::audio::mel80::Mel80::new()),
        })
    }

    /// The generator pack's `prepare.onnx`, if it has one.
    pub fn prepare_model(&self) -> Option<Arc<Mutex<PrepareModel>>> {
        match &self.render {
            Render::Generator { prepare, .. } => prepare.clone(),
            Render::Warp => None,
        }
    }

    /// The generator model itself (benchmarks time it apart).
    pub fn generate_model(&self) -> Option<Arc<Mutex<GenerateModel>>> {
        match &self.render {
            Render::Generator { model, .. } => Some(model.clone()),
            Render::Warp => None,
        }
    }

    /// The built-in animator itself (benchmarks time its stages apart).
    pub fn warp_animator(
        &self,
        portrait: &PreparedPortrait,
        seed: u64,
    ) -> Result<WarpAnimator, LoadError> {
        if self.is_generator() {
            return Err(LoadError::NotWarp(self.pack.manifest.name.clone()));
        }
        Ok(WarpAnimator::new(
            self.mouth_frontend()?,
            self.renderer(portrait, seed),
        ))
    }
}
