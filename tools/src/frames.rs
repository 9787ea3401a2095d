//! Lip sync measured on rendered frames, not on parameters.
//!
//! The committed held-out voice (`models/eval/mouth-heldout`) goes through the pack's network front end and the
//! real renderer, followed by a second of silence; the face mesh then tracks every rendered frame as it would a
//! video, and the inner-lip gap (landmarks 13 and 14, in inter-ocular distances of the tracked face) is scored:
//! - **follows the audio**: Pearson r of the gap with the loudness envelope (`eval::envelope`), per clip, averaged,
//!   at the best lag within one frame (and the lag of the peak within ±5 frames);
//! - **opens**: 90th minus 10th percentile of the gap over speech frames;
//! - **rests**: 90th minus 10th percentile over silent frames (pauses inside the clips and the trailing second);
//! - **closes**: share of bilabials (/m b p/) with the gap at or below [`CLOSED_GAP`] on a frame of the phone or
//!   within one frame of it;
//! - **smooth**: the largest change of the gap from one frame to the next in speech.

use crate::eval::{self, Clip};
use anyhow::Context;
use image::RgbImage;
use lipcast_worker::{
    audio::{MouthParams, NetworkFrontend, SAMPLES_PER_FRAME},
    avatar::{FaceModels, Frame, PreparedPortrait, Renderer, render::RenderOptions},
    model::{ModelPack, Runtime},
};

/// Gap (inter-ocular distances) at or below which the lips count as closed.
pub const CLOSED_GAP: f32 = 0.02;
/// Silence rendered after each clip, frames.
const TRAILING_SILENCE: usize = 25;

/// One clip rendered and tracked.
#[derive(Debug, Clone)]
pub struct TrackedClip {
    pub name: String,
    /// Per frame: inner-lip gap in inter-ocular distances, as the tracker sees it.
    pub gap: Vec<f32>,
    /// Per frame: the parameters the renderer was given.
    pub params: Vec<MouthParams>,
    /// Frames of speech and of silence (indices into `gap`).
    pub speech: Vec<usize>,
    pub silence: Vec<usize>,
    /// Loudness envelope of the clip's frames (dB), without the trailing silence.
    pub envelope: Vec<f32>,
    /// Bilabial windows (first and last frame, inclusive).
    pub bilabials: Vec<(usize, usize)>,
}

/// The figures of one portrait.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Mean over clips of Pearson r (gap, envelope) at the best lag in -1..=1 frames, and that lag.
    pub r: f32,
    pub lag: i32,
    /// Lag of the correlation peak within ±5 frames (positive: the mouth after the sound).
    pub peak_lag: i32,
    /// p90 - p10 of the gap in speech and in silence, inter-ocular distances.
    pub speech_spread: f32,
    pub silence_spread: f32,
    /// Share of bilabials closed.
    pub bilabials_closed: f32,
    pub bilabials: usize,
    /// Median over the bilabials of the smallest gap on a frame of the phone or within one frame of it: how
    /// near to closed the lips come when they miss.
    pub bilabial_gap: f32,
    /// Largest frame-to-frame change of the gap in speech.
    pub max_step: f32,
    /// Inter-ocular distance in the output, pixels.
    pub interocular_px: f32,
}

impl Figures {
    /// The thresholds, and which of them fail.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.r < 0.6 {
            out.push(format!("gap/audio correlation {:.2} < 0.6", self.r));
        }
        if self.speech_spread < 0.12 {
            out.push(format!("speech opening {:.3} < 0.12", self.speech_spread));
        }
        if self.silence_spread > 0.03 {
            out.push(format!("silence motion {:.3} > 0.03", self.silence_spread));
        }
        if self.bilabials_closed < 0.8 {
            out.push(format!(
                "bilabials closed {:.0}% < 80%",
                100.0 * self.bilabials_closed
            ));
        }
        out
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "r {:.2} at lag {:+} (peak {:+}), opening p90-p10 {:.3} IOD in speech, {:.3} in silence, bilabials closed {:.0}% of {} (median smallest gap {:.3}), largest step {:.3}, IOD {:.0} px",
            self.r,
            self.lag,
            self.peak_lag,
            self.speech_spread,
            self.silence_spread,
            100.0 * self.bilabials_closed,
            self.bilabials,
            self.bilabial_gap,
            self.max_step,
            self.interocular_px
        )
    }
}

/// Follows a face through frames with the mesh alone, as MediaPipe's tracker does: each crop comes from the
/// previous frame's landmarks.
pub struct Tracker {
    last: Vec<[f32; 3]>,
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn centre(points: &[[f32; 3]], ids: &[usize]) -> [f32; 3] {
    let n = ids.len() as f32;
    let s = ids.iter().fold([0.0; 3], |a, &i| {
        [a[0] + points[i][0], a[1] + points[i][1], 0.0]
    });
    [s[0] / n, s[1] / n, 0.0]
}

/// Inner-lip gap of a mesh in inter-ocular distances, and the inter-ocular distance in pixels.
pub fn gap_of(points: &[[f32; 3]]) -> (f32, f32) {
    let iod = distance(
        centre(points, &[33, 133, 159, 145]),
        centre(points, &[263, 362, 386, 374]),
    )
    .max(1e-3);
    (distance(points[13], points[14]) / iod, iod)
}

impl Tracker {
    /// Starts from the landmarks of the prepared portrait (found by detection and mesh on the still).
    pub fn new(portrait: &PreparedPortrait) -> Self {
        Self {
            last: portrait.landmarks.clone(),
        }
    }

    /// The mesh on `img`, cropped from the last frame's landmarks.
    pub fn track(
        &mut self,
        models: &mut FaceModels,
        img: &RgbImage,
    ) -> anyhow::Result<Vec<[f32; 3]>> {
        let mesh = models
            .mesh_from_points(img, &self.last)
            .context("face mesh on a rendered frame")?;
        self.last = mesh.points.clone();
        Ok(mesh.points)
    }
}

fn rgb(frame: &Frame) -> RgbImage {
    frame.to_rgb_image()
}

/// Renders every clip (plus trailing silence) on `portrait` and tracks the frames. `keep` receives every
/// rendered frame with its clip index and frame index (for contact sheets).
pub fn render_and_track(
    runtime: &Runtime,
    pack: &ModelPack,
    models: &mut FaceModels,
    portrait: &PreparedPortrait,
    clips: &[Clip],
    keep: &mut dyn FnMut(usize, usize, &Frame),
) -> anyhow::Result<Vec<TrackedClip>> {
    let mut frontend =
        NetworkFrontend::load(runtime, pack).context("loading the network front end")?;
    let mut renderer = Renderer::new(
        portrait,
        RenderOptions {
            seed: 1,
            ..Default::default()
        },
    );
    let mut tracker = Tracker::new(portrait);
    let mut index = 0u64;
    let mut out = Vec::new();
    for (ci, clip) in clips.iter().enumerate() {
        let frames = clip.targets.len();
        let mut pcm = clip.pcm.clone();
        pcm.resize((frames + TRAILING_SILENCE) * SAMPLES_PER_FRAME, 0.0);
        let mut params = eval::run_frontend(&mut frontend, &pcm);
        params.resize(frames + TRAILING_SILENCE, MouthParams::REST);
        let mut gap = Vec::with_capacity(params.len());
        for (k, p) in params.iter().enumerate() {
            let frame = renderer.render(p, index);
            index += 1;
            keep(ci, k, frame);
            let points = tracker.track(models, &rgb(frame))?;
            gap.push(gap_of(&points).0);
        }
        let silent_in_clip = eval::silent_frames(clip);
        let silence: Vec<usize> = silent_in_clip
            .iter()
            .copied()
            .chain(frames + 3..frames + TRAILING_SILENCE)
            .collect();
        let speech: Vec<usize> = (0..frames)
            .filter(|k| !silent_in_clip.contains(k))
            .collect();
        out.push(TrackedClip {
            name: clip.name.clone(),
            gap,
            params,
            speech,
            silence,
            envelope: eval::envelope(&clip.pcm, frames),
            bilabials: eval::bilabial_windows(clip)
                .into_iter()
                .map(|(_, _, a, b)| (a, b))
                .collect(),
        });
    }
    Ok(out)
}

fn percentile(values: &mut [f32], q: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let i = ((values.len() - 1) as f32 * q).round() as usize;
    values[i]
}

/// Pearson r of the gap with the envelope, the gap shifted by `lag` frames (positive: mouth after the sound).
fn r_at(clip: &TrackedClip, lag: i32) -> f32 {
    r_of(&clip.gap, &clip.envelope, lag)
}

/// Pearson r of `series` with `envelope`, the series shifted by `lag` frames.
fn r_of(series: &[f32], envelope: &[f32], lag: i32) -> f32 {
    let n = envelope.len() as i32;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for k in 0..n {
        let g = k + lag;
        if g >= 0 && (g as usize) < series.len() {
            a.push(series[g as usize]);
            b.push(envelope[k as usize]);
        }
    }
    eval::pearson(&a, &b)
}

/// The best mean r (lag within one frame) of per-clip series with the clips' loudness: what the gap could reach
/// if it followed `series` exactly.
pub fn ceiling(clips: &[TrackedClip], series: impl Fn(&TrackedClip) -> Vec<f32>) -> f32 {
    (-1..=1)
        .map(|lag| {
            clips
                .iter()
                .map(|c| r_of(&series(c), &c.envelope, lag))
                .sum::<f32>()
                / clips.len().max(1) as f32
        })
        .fold(f32::MIN, f32::max)
}

/// Scores tracked clips.
pub fn figures(clips: &[TrackedClip], interocular_px: f32) -> Figures {
    let mean_r =
        |lag: i32| clips.iter().map(|c| r_at(c, lag)).sum::<f32>() / clips.len().max(1) as f32;
    let (lag, r) = (-1..=1)
        .map(|l| (l, mean_r(l)))
        .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
    let peak_lag = (-5..=5)
        .map(|l| (l, mean_r(l)))
        .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a })
        .0;
    let mut speech: Vec<f32> = clips
        .iter()
        .flat_map(|c| c.speech.iter().map(|&k| c.gap[k]))
        .collect();
    let mut silence: Vec<f32> = clips
        .iter()
        .flat_map(|c| c.silence.iter().map(|&k| c.gap[k]))
        .collect();
    let speech_spread = percentile(&mut speech, 0.9) - percentile(&mut speech, 0.1);
    let silence_spread = percentile(&mut silence, 0.9) - percentile(&mut silence, 0.1);
    let mut smallest: Vec<f32> = clips
        .iter()
        .flat_map(|c| {
            c.bilabials.iter().map(|&(a, b)| {
                (a..=b.min(c.gap.len() - 1))
                    .map(|k| c.gap[k])
                    .fold(f32::INFINITY, f32::min)
            })
        })
        .collect();
    let total = smallest.len();
    let closed = smallest.iter().filter(|g| **g <= CLOSED_GAP).count();
    let bilabial_gap = percentile(&mut smallest, 0.5);
    let max_step = clips
        .iter()
        .flat_map(|c| {
            c.speech
                .windows(2)
                .filter(|w| w[1] == w[0] + 1)
                .map(|w| (c.gap[w[1]] - c.gap[w[0]]).abs())
        })
        .fold(0.0f32, f32::max);
    Figures {
        r,
        lag,
        peak_lag,
        speech_spread,
        silence_spread,
        bilabials_closed: if total == 0 {
            1.0
        } else {
            closed as f32 / total as f32
        },
        bilabials: total,
        bilabial_gap,
        max_step,
        interocular_px,
    }
}
