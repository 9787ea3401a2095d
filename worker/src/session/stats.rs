//! Figures of the real-time loop, collected per reporting window.

use std::time::{Duration, Instant};

use super::SessionStats;

pub struct StatsWindow {
    since: Instant,
    last_frame: Option<Instant>,
    current: SessionStats,
    render: Duration,
    rendered: u32,
}

fn ms(d: Duration) -> f32 {
    d.as_secs_f32() * 1000.0
}

impl StatsWindow {
    pub fn new(now: Instant) -> Self {
        Self {
            since: now,
            last_frame: None,
            current: SessionStats::default(),
            render: Duration::ZERO,
            rendered: 0,
        }
    }

    /// Start of the current window.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// A frame was captured at `at`, with `queued` audio ahead of it in the engine.
    pub fn frame(&mut self, at: Instant, queued: Duration) {
        if let Some(prev) = self.last_frame {
            self.current.frame_interval_ms.push(ms(at - prev));
        }
        self.last_frame = Some(at);
        self.current.frames += 1;
        self.current.av_offset_ms.push(ms(queued));
    }

    pub fn dropped(&mut self, n: u64) {
        self.current.dropped_frames += n;
    }

    /// Speech frames shown without their model output (generation behind).
    pub fn late(&mut self, n: u64) {
        self.current.late_frames += n;
    }

    pub fn audio_to_mouth(&mut self, latency: Duration) {
        self.current.audio_to_mouth_ms.push(ms(latency));
    }

    /// CPU time spent rendering one frame.
    pub fn render(&mut self, cpu: Duration) {
        self.render += cpu;
        self.rendered += 1;
    }

    /// Ends the window: its figures, plus process figures read now.
    pub fn take(&mut self, now: Instant) -> SessionStats {
        let mut out = std::mem::take(&mut self.current);
        out.render_ms_per_frame = if self.rendered > 0 {
            self.render.as_secs_f64() * 1000.0 / f64::from(self.rendered)
        } else {
            0.0
        };
        out.rss_bytes = crate::procstat::rss_bytes();
        out.cpu_seconds = crate::procstat::cpu_seconds();
        self.render = Duration::ZERO;
        self.rendered = 0;
        self.since = now;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_between_frames() {
        let t0 = Instant::now();
        let mut w = StatsWindow::new(t0);
        for i in 0..5u32 {
            w.frame(t0 + Duration::from_millis(40) * i, Duration::from_millis(3));
        }
        w.dropped(2);
        let s = w.take(t0 + Duration::from_secs(1));
        assert_eq!(s.frames, 5);
        assert_eq!(s.dropped_frames, 2);
        assert_eq!(s.frame_interval_ms.len(), 4);
        assert!(s.frame_interval_ms.iter().all(|v| (v - 40.0).abs() < 0.01));
        assert!(w.take(t0).frames == 0, "a new window starts empty");
    }
}
