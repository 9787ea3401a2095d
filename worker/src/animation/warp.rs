//! The built-in pack's way to animate: a mouth front end turns audio into mouth parameters, the warp renderer
//! draws them ([`WarpAnimator`]); [`Warp`] makes its animators and owns its warm-up, benchmark and test frame.

use std::time::{Duration, Instant};

use image::RgbImage;
use lipcast_proto::StageTime;

use super::{Animation, AnimationError, Animator, PackContext, Timings, ms};
use crate::audio::{
    FrontendKind, MouthFrontend, MouthParams, SAMPLES_PER_FRAME, build_frontend, synth,
};
use crate::avatar::{Frame, PreparedPortrait, Renderer};
use crate::model::{ModelPack, Runtime};

/// The built-in warp renderer driven by a mouth front end of `frontend`'s kind.
pub struct Warp {
    frontend: FrontendKind,
}

impl Warp {
    /// Checks that the pack has what the front end needs (built once now, so a missing file fails at
    /// `Prepare`, not at a launch).
    pub fn new(
        frontend: FrontendKind,
        runtime: &Runtime,
        pack: &ModelPack,
    ) -> Result<Self, AnimationError> {
        drop(build_frontend(frontend, runtime, pack)?);
        Ok(Self { frontend })
    }

    /// The animator itself: the benchmark and the test frame below take its stages apart.
    fn warp_animator(
        &self,
        cx: &PackContext<'_>,
        renderer: Renderer,
    ) -> Result<WarpAnimator, AnimationError> {
        Ok(WarpAnimator::new(
            build_frontend(self.frontend, cx.runtime, cx.pack)?,
            renderer,
        ))
    }
}

impl Animation for Warp {
    fn audio_feature(&self) -> String {
        self.frontend.to_string()
    }

    fn animator(
        &self,
        cx: &PackContext<'_>,
        _portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<Box<dyn Animator>, AnimationError> {
        Ok(Box::new(self.warp_animator(cx, renderer)?))
    }

    fn warm_up(
        &self,
        cx: &PackContext<'_>,
        _portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<(), AnimationError> {
        let mut animator = self.warp_animator(cx, renderer)?;
        animator.push_audio(&synth::syllables(0.5, 0));
        animator.end_of_audio();
        for i in 0..4 {
            animator.speech_frame(i);
        }
        Ok(())
    }

    /// Per frame: audio features and mouth parameters, rendering, and the I420 conversion the published track
    /// needs.
    fn benchmark(
        &self,
        cx: &PackContext<'_>,
        _portrait: &PreparedPortrait,
        renderer: Renderer,
        iterations: usize,
    ) -> Result<Timings, AnimationError> {
        let n = iterations.max(1);
        let mut animator = self.warp_animator(cx, renderer)?;
        let speech = synth::syllables((n as f32 + 2.0) / cx.fps as f32, 1);
        let (mut features, mut render, mut convert) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut i420 = Vec::new();
        let mut fed = 0usize;
        for i in 0..n {
            let t = Instant::now();
            // Feed one frame of audio (plus the look-ahead on the first), then take one frame's parameters.
            let want = ((i + 2) * SAMPLES_PER_FRAME).min(speech.len());
            if want > fed {
                animator.push_audio(&speech[fed..want]);
                fed = want;
            }
            let params = animator.next_params();
            features += t.elapsed();
            let t = Instant::now();
            let frame = animator.render(&params, i as u64);
            render += t.elapsed();
            let t = Instant::now();
            frame.to_i420(&mut i420);
            convert += t.elapsed();
        }
        let per = |d: Duration| ms(d) / n as f64;
        Ok(Timings {
            frames: n,
            frames_per_generate: 1,
            per_frame: vec![
                stage("features", per(features)),
                stage("render", per(render)),
                stage("i420", per(convert)),
            ],
            other: Vec::new(),
        })
    }

    /// The most open mouth of the first second of synthetic speech.
    fn test_frame(
        &self,
        cx: &PackContext<'_>,
        _portrait: &PreparedPortrait,
        renderer: Renderer,
    ) -> Result<RgbImage, AnimationError> {
        let mut animator = self.warp_animator(cx, renderer)?;
        animator.push_audio(&synth::syllables(1.0, 2));
        animator.end_of_audio();
        let mut best = (f32::MIN, 0u64, MouthParams::REST);
        let mut i = 0u64;
        while animator.ready() > 0 && i < 25 {
            let p = animator.next_params();
            if p.opening() > best.0 {
                best = (p.opening(), i, p);
            }
            i += 1;
        }
        Ok(animator.render(&best.2, best.1).to_rgb_image())
    }
}

fn stage(name: &str, avg_ms: f64) -> StageTime {
    StageTime {
        name: name.into(),
        avg_ms,
    }
}

/// The built-in pack's animator: mouth parameters from a front end, drawn by the warp renderer.
pub struct WarpAnimator {
    frontend: Box<dyn MouthFrontend>,
    renderer: Renderer,
}

impl WarpAnimator {
    pub fn new(frontend: Box<dyn MouthFrontend>, renderer: Renderer) -> Self {
        Self { frontend, renderer }
    }

    /// Pops the next frame's parameters without rendering (benchmarks time the stages apart).
    pub fn next_params(&mut self) -> MouthParams {
        self.frontend.pop().unwrap_or(MouthParams::REST)
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
