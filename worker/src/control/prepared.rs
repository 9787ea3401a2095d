//! A worker's loaded model: the ONNX Runtime on its device, the verified pack, the face models and the shipped
//! default portrait, prepared once (`Prepare`) and shared by the session, `/benchmark` and `/test-frame`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use lipcast_proto::{PrepareReply, PrepareRequest};

use crate::audio::{FrontendError, FrontendKind, MouthFrontend, build_frontend};
use crate::avatar::render::RenderOptions;
use crate::avatar::{FaceModels, PrepareError, PrepareOptions, PreparedPortrait, Renderer};
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
}

pub struct Prepared {
    pack: ModelPack,
    face: Mutex<FaceModels>,
    default_portrait: PreparedPortrait,
    options: PrepareOptions,
    frontend: FrontendKind,
    fps: u32,
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
        let frontend = FrontendKind::resolve(Some(&req.audio_frontend), &pack)?;
        // Build it once now, so a pack without the file it needs fails here, not at a launch.
        drop(build_frontend(frontend, &runtime, &pack)?);
        let max_long_side = if req.max_long_side >= 64 {
            req.max_long_side & !1
        } else {
            pack.manifest.output.max_long_side
        };
        let options = PrepareOptions { max_long_side };
        let mut face = FaceModels::load(&runtime, &pack)?;
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
                audio_frontend: frontend.to_string(),
            },
            pack,
            face: Mutex::new(face),
            default_portrait,
            options,
            frontend,
            fps,
            runtime,
        };
        // Warm the render path (caches, allocator) so the first session frame is not the slow one.
        let mut animator = prepared.animator(&prepared.default_portrait, 0)?;
        let speech = crate::audio::synth::syllables(0.5, 0);
        animator.push_audio(&speech);
        animator.end_of_audio();
        for i in 0..4 {
            animator.speech_frame(i);
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
        Ok(Box::new(self.warp_animator(portrait, seed)?))
    }

    /// The built-in animator itself (benchmarks time its stages apart).
    pub fn warp_animator(
        &self,
        portrait: &PreparedPortrait,
        seed: u64,
    ) -> Result<WarpAnimator, LoadError> {
        let renderer = Renderer::new(
            portrait,
            RenderOptions {
                seed,
                fps: self.fps,
                idle_motion: true,
            },
        );
        Ok(WarpAnimator::new(self.mouth_frontend()?, renderer))
    }
}
