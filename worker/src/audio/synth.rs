//! Synthetic speech-like audio for `/benchmark` and `/test-frame`: voiced syllables (a 120 Hz glottal
//! pulse train shaped by two formants) at about four per second, separated by short pauses. It exercises
//! the real feature and render path without shipping recordings.

/// `seconds` of 16 kHz mono "speech" in [-1, 1]; the same seed gives the same samples.
pub fn syllables(seconds: f32, seed: u64) -> Vec<f32> {
    const RATE: f32 = 16_000.0;
    let n = (seconds.max(0.0) * RATE) as usize;
    // Vowel formants (F1, F2) in Hz: a, i, u, e, o.
    const VOWELS: [(f32, f32); 5] = [
        (800.0, 1200.0),
        (300.0, 2300.0),
        (320.0, 800.0),
        (500.0, 1800.0),
        (500.0, 900.0),
    ];
    let mut out = Vec::with_capacity(n);
    let (mut y1a, mut y2a, mut y1b, mut y2b) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    let syllable = (0.25 * RATE) as usize;
    for i in 0..n {
        let s = i / syllable;
        let within = (i % syllable) as f32 / syllable as f32;
        let (f1, f2) = VOWELS[((s as u64).wrapping_mul(7).wrapping_add(seed) % 5) as usize];
        // 70% voiced with a smooth envelope, then a pause.
        let env = if within < 0.7 {
            (std::f32::consts::PI * within / 0.7).sin().powf(0.6)
        } else {
            0.0
        };
        let pulse = if i % (RATE as usize / 120) == 0 {
            1.0
        } else {
            0.0
        };
        // Two-pole resonators at F1 and F2.
        let res = |f: f32, bw: f32, x: f32, y1: &mut f32, y2: &mut f32| {
            let r = (-std::f32::consts::PI * bw / RATE).exp();
            let c = 2.0 * r * (std::f32::consts::TAU * f / RATE).cos();
            let y = x + c * *y1 - r * r * *y2;
            *y2 = *y1;
            *y1 = y;
            y
        };
        let a = res(f1, 90.0, pulse, &mut y1a, &mut y2a);
        let b = res(f2, 120.0, pulse, &mut y1b, &mut y2b);
        out.push(((0.05 * a + 0.03 * b) * env).clamp(-1.0, 1.0));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_has_pauses() {
        let a = super::syllables(1.0, 3);
        assert_eq!(a, super::syllables(1.0, 3));
        assert_eq!(a.len(), 16_000);
        let peak = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.1, "peak {peak}");
        // The pause at the end of the first syllable is silent.
        assert!(a[3_200..4_000].iter().all(|v| v.abs() < 0.02));
    }
}
