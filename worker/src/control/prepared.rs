//! A worker's loaded model: the ONNX Runtime on its device, the verified pack, the face models and the shipped
//! default portrait, prepared once (`Prepare`) and shared by the session, `/benchmark` and `/test-frame`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use lipcast_proto::{AudioFrontend, Device as ProtoDevice, PrepareReply, PrepareRequest};

use crate::animation::{Animation, AnimationError, Animator, Generator, PackContext, Warp};
use crate::audio::{FrontendError, FrontendKind};
use crate::avatar::render::RenderOptions;
use crate::avatar::{FaceModels, PrepareError, PrepareOptions, PreparedPortrait, Renderer};
use crate::model::{ActiveDevice, Device, FileRole, ModelPack, Runtime, RuntimeConfig};

/// Frames timed after the warm-up to measure the pack's speed (a generator rounds up to whole batches). Few, so
/// the check costs the built-in pack milliseconds; after the warm-up, so first-call costs are not counted.
const SPEED_FRAMES: usize = 8;

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
    Animation(#[from] AnimationError),
}

/// A worker's loaded model, shared by the session, `/benchmark` and `/test-frame`.
pub struct Prepared {
    pack: ModelPack,
    face: Mutex<FaceModels>,
    default_portrait: PreparedPortrait,
    options: PrepareOptions,
    fps: u32,
    /// How the pack animates: chosen once, here, by the manifest.
    animation: Box<dyn Animation>,
    pub reply: PrepareReply,
    runtime: Runtime,
}

impl Prepared {
    /// Loads and verifies everything, and warms up: the face models run on the default portrait and a few
    /// frames are rendered.
    pub fn load(req: &PrepareRequest) -> Result<Self, LoadError> {
        let t0 = Instant::now();
        let device = match req.device() {
            ProtoDevice::Auto => Device::Auto,
            ProtoDevice::Cuda => Device::Cuda,
            ProtoDevice::Cpu => Device::Cpu,
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
        // A generator pack computes its own audio feature; AUDIO_FRONTEND applies to the warp renderer only.
        let animation: Box<dyn Animation> = match &pack.manifest.generator {
            Some(spec) => Box::new(Generator::load(&runtime, &pack, spec)?),
            None => Box::new(Warp::new(
                FrontendKind::resolve(
                    match req.audio_frontend() {
                        AudioFrontend::Pack => None,
                        AudioFrontend::Network => Some(FrontendKind::Network),
                        AudioFrontend::Dsp => Some(FrontendKind::Dsp),
                    },
                    &pack,
                ),
                &runtime,
                &pack,
            )?),
        };
        let max_long_side = if req.max_long_side >= 64 {
            req.max_long_side & !1
        } else {
            pack.manifest.output.max_long_side
        };
        let options = PrepareOptions { max_long_side };
        // A generator pack may bring its own face models; without them it uses the built-in pack's.
        let mut face =
            if pack.file(FileRole::FaceDetector).is_ok() && pack.file(FileRole::FaceMesh).is_ok() {
                FaceModels::load(&runtime, &pack)?
            } else {
                FaceModels::load(&runtime, &ModelPack::builtin()?)?
            };
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;

        let t1 = Instant::now();
        let path = crate::model::pack::default_portrait().ok_or(LoadError::NoDefaultPortrait)?;
        let bytes = std::fs::read(path)?;
        let default_portrait = face.prepare(&bytes, &options)?;
        let device = match runtime.active_device() {
            Some(ActiveDevice::Cuda) => ProtoDevice::Cuda,
            Some(ActiveDevice::Cpu) | None => ProtoDevice::Cpu,
        };
        let fps = pack.manifest.fps;
        let prepared = Self {
            reply: PrepareReply {
                device: device.into(),
                pack_name: pack.manifest.name.clone(),
                pack_version: pack.manifest.version.clone(),
                load_ms,
                warmup_ms: 0.0,
                cpu: crate::procstat::cpu_model(),
                gpu: String::new(),
                audio_feature: animation.audio_feature(),
                frames_per_second: 0.0,
                session_fps: fps,
            },
            pack,
            face: Mutex::new(face),
            default_portrait,
            options,
            fps,
            animation,
            runtime,
        };
        // Warm the render path so the first session frame is not the slow one.
        let portrait = &prepared.default_portrait;
        prepared.animation.warm_up(
            &prepared.context(),
            portrait,
            prepared.renderer(portrait, 0),
        )?;
        // Then time the real path when asked, so a pack too slow for this device is known before any session.
        let speed = if req.time_speed {
            prepared
                .animation
                .benchmark(
                    &prepared.context(),
                    portrait,
                    prepared.renderer(portrait, 0),
                    SPEED_FRAMES,
                )?
                .frames_per_second()
        } else {
            0.0
        };
        let mut prepared = prepared;
        prepared.reply.frames_per_second = speed;
        prepared.reply.warmup_ms = t1.elapsed().as_secs_f64() * 1e3;
        Ok(prepared)
    }

    pub fn pack(&self) -> &ModelPack {
        &self.pack
    }

    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// How the pack animates (its benchmark and test frame; the generator's networks for tests).
    pub fn animation(&self) -> &dyn Animation {
        &*self.animation
    }

    /// What the animation may use of the loaded pack.
    pub fn context(&self) -> PackContext<'_> {
        PackContext {
            runtime: &self.runtime,
            pack: &self.pack,
            fps: self.fps,
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

    /// A fresh animator for `portrait`.
    pub fn animator(
        &self,
        portrait: &PreparedPortrait,
        seed: u64,
    ) -> Result<Box<dyn Animator>, LoadError> {
        let renderer = self.renderer(portrait, seed);
        Ok(self
            .animation
            .animator(&self.context(), portrait, renderer)?)
    }

    /// The built-in renderer of `portrait` (idle motion seeded with `seed`).
    pub fn renderer(&self, portrait: &PreparedPortrait, seed: u64) -> Renderer {
        Renderer::new(
            portrait,
            RenderOptions {
                seed,
                fps: self.fps,
                idle_motion: true,
            },
        )
    }
}
