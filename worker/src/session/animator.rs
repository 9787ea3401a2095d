//! What the real-time loop asks of a model: turn the current segment's audio into speech frames, and draw
//! idle frames when nobody speaks. The built-in pack is a mouth front end plus the warp renderer
//! ([`WarpAnimator`]); other packs implement the same trait.

use crate::audio::{MouthFrontend, MouthParams};
use crate::avatar::{Frame, Renderer};

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

/// The built-in pack's animator: mouth parameters from a front end, drawn by the warp renderer.
pub struct WarpAnimator {
    frontend: Box<dyn MouthFrontend>,
    renderer: Renderer,
    /// The parameters of the last speech frame (for `/test-frame` and diagnostics).
    last: MouthParams,
}

impl WarpAnimator {
    pub fn new(frontend: Box<dyn MouthFrontend>, renderer: Renderer) -> Self {
        Self {
            frontend,
            renderer,
            last: MouthParams::REST,
        }
    }

    /// Mouth parameters of the last speech frame.
    pub fn last_params(&self) -> MouthParams {
        self.last
    }

    /// Pops the next frame's parameters without rendering (benchmarks time the stages apart).
    pub fn next_params(&mut self) -> MouthParams {
        self.last = self.frontend.pop().unwrap_or(MouthParams::REST);
        self.last
    }

    /// Renders `params` at frame `index`.
    pub fn render(&mut self, params: &MouthParams, index: u64) -> &Frame {
        self.renderer.render(params, index)
    }
}

impl Animator for WarpAnimator {
    fn size(&self) -> (u32, u32) {
        self.renderer.size()
    }

    fn push_audio(&mut self, pcm: &[f32]) {
        self.frontend.push(pcm);
    }

    fn end_of_audio(&mut self) {
        self.frontend.flush();
    }

    fn ready(&self) -> usize {
        self.frontend.ready()
    }

    fn speech_frame(&mut self, index: u64) -> &Frame {
        let params = self.next_params();
        self.renderer.render(&params, index)
    }

    fn idle_frame(&mut self, index: u64) -> &Frame {
        self.renderer.render(&MouthParams::REST, index)
    }

    fn reset(&mut self) {
        self.frontend.reset();
    }

    fn lookahead_ms(&self) -> f32 {
        self.frontend.lookahead_ms()
    }
}
