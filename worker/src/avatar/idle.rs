//! Idle motion: blinks at natural, seeded intervals and a slow, slight head sway. Both are pure functions of the
//! seed and the frame index, so a render is reproducible.

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
}

/// Seeded idle-motion generator at a given frame rate.
#[derive(Debug, Clone)]
pub struct IdleMotion {
    fps: f32,
    rng: SplitMix,
    /// Blink start frames generated so far (increasing).
    blinks: Vec<u64>,
    phases: [f32; 4],
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
        IdlePose { blink, shift, roll }
    }
}
