//! How a pack animates a portrait, behind two traits: [`Animator`], what the real-time loop asks of one
//! session's animation (speech frames from audio, idle frames in silence), and [`Animation`], what the control
//! plane asks of a loaded pack (animators, a warm-up, a benchmark, a test frame), so neither branches on the
//! kind of pack.
//!
//! - [`warp`]: the built-in pack (a mouth front end and the warp renderer).
//! - [`generator`]: a generator pack's networks (`renderer = "generator"`).

pub mod generator;
pub mod warp;

use std::time::Duration;

use image::RgbImage;
use lipcast_proto::StageTime;

use crate::audio::FrontendError;
use crate::avatar::{Frame, PreparedPortrait, Renderer};
use crate::generator::GenerateError;
use crate::generator::animator::AnimatorError;
use crate::model::{ModelPack, Runtime};

pub use generator::Generator;
pub use warp::{Warp, WarpAnimator};

/// What the real-time loop asks of a model: turn the current segment's audio into speech frames, and draw
/// idle frames when nobody speaks.
pub trait Animator: Send {
    /// Output size in pixels (even).
    fn size(&self) -> (u32, u32);
    /// Appends 16 kHz mono audio of the segment being played, in order.
    fn push_audio(&mut self, pcm: &[f32]);
    /// The segment has no more audio: makes its remaining frames ready.
    fn end_of_audio(&mut self);
    /// Speech frames that can be rendered now.
    fn ready(&self) -> usize;
    /// Renders the next speech frame; `index` counts frames since the session started (idle motion).
    fn speech_frame(&mut self, index: u64) -> &Frame;
    /// Renders a frame without speech: mouth at rest, blinks and head motion go on.
    fn idle_frame(&mut self, index: u64) -> &Frame;
    /// Forgets pushed audio (interruption, or the next segment): the next speech frame starts from rest.
    fn reset(&mut self);
    /// Audio needed past the end of a frame before it can be rendered, ms.
    fn lookahead_ms(&self) -> f32;
    /// Frames one model call renders (1 for the built-in pack).
    fn frames_per_generate(&self) -> u32 {
        1
    }
    /// True while the model is still rendering a segment's first frame: the playout holds the segment even if
    /// its input has ended (a generator renders ahead on its own thread; the built-in pack never waits).
    fn waits_for_model(&self) -> bool {
        false
    }
    /// Speech frames shown since creation without their own model output because generation was behind (the
    /// previous output or the mouth at rest was shown instead). Always 0 for the built-in pack.
    fn late_frames(&self) -> u64 {
        0
    }
}

/// What an [`Animation`] may use of the worker's loaded pack.
pub struct PackContext<'a> {
    pub runtime: &'a Runtime,
    pub pack: &'a ModelPack,
    pub fps: u32,
}

/// A benchmark's figures, ms per frame by stage.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Frames timed.
    pub frames: usize,
    pub frames_per_generate: u32,
    /// Stages every frame goes through, in order; a frame costs their sum.
    pub per_frame: Vec<StageTime>,
    /// Other figures reported beside them (once per portrait, the look-ahead), not per frame.
    pub other: Vec<StageTime>,
}

impl Timings {
    /// What one frame costs: the sum of the per-frame stages, ms.
    pub fn ms_per_frame(&self) -> f64 {
        self.per_frame.iter().map(|s| s.avg_ms).sum()
    }

    /// Frames per second the path renders one after another (0 when nothing was timed).
    pub fn frames_per_second(&self) -> f64 {
        let ms = self.ms_per_frame();
        if ms > 0.0 { 1000.0 / ms } else { 0.0 }
    }
}

/// Why an animation could not be made or run.
#[derive(Debug, thiserror::Error)]
pub enum AnimationError {
    #[error("audio front end: {0}")]
    Frontend(#[from] FrontendError),
    #[error("{0}")]
    Generate(#[from] GenerateError),
    #[error("{0}")]
    Animator(#[from] AnimatorError),
    #[error("the generator did not render its first frames: {0}")]
    Warmup(String),
    #[error("the generator did not render the test frame: {0}")]
    TestFrame(String),
}

/// A loaded pack's way to animate portraits.
pub trait Animation: Send + Sync {
    /// The audio feature it computes from speech (a front end's name, or the generator's feature).
    fn audio_feature(&self) -> String;
    /// A fresh animator for `portrait`, drawing with `renderer` (the built-in renderer of that portrait: the
    /// idle motion, and the whole frame for the warp).
    fn animator(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<Box<dyn Animator>, AnimationError>;
    /// Renders a few real frames of speech so a session's first frame is not the slow one (caches, the
    /// allocator, a model's first calls); an error means the pack cannot serve.
    fn warm_up(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<(), AnimationError>;
    /// Times about `iterations` frames of synthetic speech through the real path, per stage.
    fn benchmark(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        renderer: Renderer,
        iterations: usize,
    ) -> Result<Timings, AnimationError>;
    /// One frame mid-speech, for `/test-frame`.
    fn test_frame(
        &self,
        cx: &PackContext<'_>,
        portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<RgbImage, AnimationError>;
    /// The generator, for tests and tools that look inside it; `None` for the warp.
    fn as_generator(&self) -> Option<&Generator> {
        None
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
