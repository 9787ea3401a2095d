//! Life beside the mouth: blinks at natural, seeded intervals, a slow, slight head sway, and while speaking small
//! nods on stressed syllables and brows that lift now and then. Blinks and sway are pure functions of the seed and
//! the frame index; the speech-driven part follows the sequence of jaw openings it is fed, so the same calls give
//! the same poses.

/// SplitMix64: small, seedable, good enough for timing jitter.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Eyelid closure and head pose for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IdlePose {
    /// Eyelid closure 0..=1 (both eyes).
    pub blink: f32,
    /// Head translation, in face heights.
    pub shift: [f32; 2],
    /// Head roll, radians.
    pub roll: f32,
    /// Brow raise 0..=1.
    pub brow: f32,
}

/// Seeded idle-motion generator at a given frame rate.
#[derive(Debug, Clone)]
pub struct IdleMotion {
    fps: f32,
    rng: SplitMix,
    /// Blink start frames generated so far (increasing).
    blinks: Vec<u64>,
    phases: [f32; 4],
    speech: SpeechMotion,
}

/// Nods and brow raises that follow the speech: an emphasis signal (the jaw's fast envelope above its slow one)
/// drives a small downward nod; strong emphasis now and then lifts the brows for about half a second.
#[derive(Debug, Clone, Default)]
struct SpeechMotion {
    fast: f32,
    slow: f32,
    nod: f32,
    brow: f32,
    /// Frames until the brows may lift again.
    cooldown: u32,
}

impl SpeechMotion {
    fn step(&mut self, jaw: f32, fps: f32, coin: f32) -> (f32, f32) {
        let jaw = if jaw.is_finite() {
            jaw.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let k = |seconds: f32| 1.0 - (-1.0 / (seconds * fps)).exp();
        self.fast += (jaw - self.fast) * k(0.06);
        self.slow += (jaw - self.slow) * k(0.6);
        let emphasis = (self.fast - self.slow - 0.08).max(0.0);
        self.nod += (emphasis - self.nod) * k(0.12);
        self.cooldown = self.cooldown.saturating_sub(1);
        if emphasis > 0.18 && self.cooldown == 0 && coin < 0.35 {
            self.brow = 1.0;
            self.cooldown = (fps * 2.5) as u32;
        }
        self.brow *= 1.0 - k(0.35);
        (self.nod, self.brow)
    }
}

/// Blink: 3 frames closing, 1 closed, 3 opening (~280 ms at 25 fps).
const BLINK_SHAPE: [f32; 7] = [0.35, 0.8, 1.0, 1.0, 0.7, 0.35, 0.1];

impl IdleMotion {
    pub fn new(seed: u64, fps: u32) -> Self {
        let mut rng = SplitMix(seed ^ 0x6C69_7063_6173_7421);
        let phases = [0; 4].map(|_| rng.next_f32() * std::f32::consts::TAU);
        Self {
            fps: fps.max(1) as f32,
            rng,
            blinks: Vec::new(),
            phases,
            speech: SpeechMotion::default(),
        }
    }

    fn blink_starts_until(&mut self, frame: u64) {
        while self.blinks.last().is_none_or(|&b| b <= frame) {
            let last = self.blinks.last().copied();
            // Intervals 2..7 s (mean ~4 s); one in six blinks is a quick double blink.
            let gap_s = if last.is_some() && self.rng.next_f32() < 0.16 {
                0.45
            } else {
                2.0 + 5.0 * self.rng.next_f32().powf(1.3)
            };
            let start = last.map_or((self.fps * (0.8 + 2.0 * self.rng.next_f32())) as u64, |l| {
                l + (gap_s * self.fps)
                    .round()
                    .max(BLINK_SHAPE.len() as f32 + 1.0) as u64
            });
            self.blinks.push(start);
        }
    }

    /// The idle pose of frame `frame`.
    pub fn pose(&mut self, frame: u64) -> IdlePose {
        self.blink_starts_until(frame);
        let blink = self
            .blinks
            .iter()
            .rev()
            .find(|&&b| b <= frame)
            .and_then(|&b| BLINK_SHAPE.get((frame - b) as usize).copied())
            .unwrap_or(0.0);
        let t = frame as f32 / self.fps;
        let tau = std::f32::consts::TAU;
        let p = self.phases;
        let shift = [
            0.004 * (tau * 0.11 * t + p[0]).sin() + 0.002 * (tau * 0.27 * t + p[1]).sin(),
            0.003 * (tau * 0.08 * t + p[2]).sin() + 0.0015 * (tau * 0.23 * t + p[1]).sin(),
        ];
        let roll = 0.008 * (tau * 0.07 * t + p[3]).sin() + 0.003 * (tau * 0.19 * t + p[0]).sin();
        IdlePose {
            blink,
            shift,
            roll,
            brow: 0.0,
        }
    }

    /// The pose of frame `frame` while the mouth opens by `jaw` (0 in silence): the idle pose plus a nod on
    /// emphasis and, now and then, raised brows.
    pub fn pose_speaking(&mut self, frame: u64, jaw: f32) -> IdlePose {
        let mut pose = self.pose(frame);
        // A per-frame coin from the seed's phases, so brow raises differ between portraits and seeds.
        let coin = ((frame as f32 * 0.618_034 + self.phases[2]).fract() + 1.0).fract();
        let (nod, brow) = self.speech.step(jaw, self.fps, coin);
        pose.shift[1] += 0.02 * nod;
        pose.brow = brow;
        pose
    }
}
