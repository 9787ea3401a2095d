//! A session's figures, aggregated from its worker's periodic stats: shown live by `/tasks/{id}` and stored
//! with the task when the session ends.

use serde_json::{Value, json};

/// Samples kept per series (an hour of frame intervals at 25 FPS).
const MAX_SAMPLES: usize = 90_000;

#[derive(Debug, Default, Clone)]
pub struct Figures {
    frames: u64,
    dropped: u64,
    late: u64,
    intervals_ms: Vec<f32>,
    audio_to_mouth_ms: Vec<f32>,
    av_offset_ms: Vec<f32>,
    render_ms_sum: f64,
    reports: u32,
    cpu_seconds: f64,
    peak_rss: u64,
}

fn push_capped(into: &mut Vec<f32>, from: &[f32]) {
    let room = MAX_SAMPLES.saturating_sub(into.len());
    into.extend(from.iter().take(room).copied());
}

/// Percentile `p` (0..=100) of `v`, nearest rank.
fn percentile(v: &[f32], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s: Vec<f32> = v.to_vec();
    s.sort_by(f32::total_cmp);
    let rank = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    Some(f64::from(s[rank.min(s.len() - 1)]))
}

fn round(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!((x * 10.0).round() / 10.0))
}

impl Figures {
    pub fn add(&mut self, s: &lipcast_proto::Stats) {
        self.frames += s.frames;
        self.dropped += s.dropped_frames;
        self.late += s.late_frames;
        push_capped(&mut self.intervals_ms, &s.frame_interval_ms);
        push_capped(&mut self.audio_to_mouth_ms, &s.audio_to_mouth_ms);
        push_capped(&mut self.av_offset_ms, &s.av_offset_ms);
        if s.frames > 0 {
            self.render_ms_sum += s.render_ms_per_frame;
            self.reports += 1;
        }
        self.cpu_seconds = self.cpu_seconds.max(s.cpu_seconds);
        self.peak_rss = self.peak_rss.max(s.rss_bytes);
    }

    pub fn summary(&self) -> Value {
        let span_s: f64 = self.intervals_ms.iter().map(|v| f64::from(*v)).sum::<f64>() / 1e3;
        json!({
            "frames": self.frames,
            "dropped_frames": self.dropped,
            "late_frames": self.late,
            "fps": if span_s > 0.0 { json!(((self.intervals_ms.len() as f64 / span_s) * 100.0).round() / 100.0) } else { Value::Null },
            "frame_interval_ms": {
                "p50": round(percentile(&self.intervals_ms, 50.0)),
                "p99": round(percentile(&self.intervals_ms, 99.0)),
                "max": round(percentile(&self.intervals_ms, 100.0)),
            },
            "audio_to_mouth_ms": {
                "p50": round(percentile(&self.audio_to_mouth_ms, 50.0)),
                "p95": round(percentile(&self.audio_to_mouth_ms, 95.0)),
                "max": round(percentile(&self.audio_to_mouth_ms, 100.0)),
            },
            "av_offset_ms": {
                "p50": round(percentile(&self.av_offset_ms, 50.0)),
                "max": round(percentile(&self.av_offset_ms, 100.0)),
            },
            "render_ms_per_frame": if self.reports > 0 { round(Some(self.render_ms_sum / f64::from(self.reports))) } else { Value::Null },
            "worker_cpu_seconds": (self.cpu_seconds * 100.0).round() / 100.0,
            "worker_peak_rss_bytes": self.peak_rss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_two_reports() {
        let mut f = Figures::default();
        f.add(&lipcast_proto::Stats {
            frames: 3,
            frame_interval_ms: vec![40.0, 40.0, 41.0],
            audio_to_mouth_ms: vec![55.0],
            render_ms_per_frame: 2.0,
            cpu_seconds: 1.5,
            rss_bytes: 100,
            ..Default::default()
        });
        f.add(&lipcast_proto::Stats {
            frames: 2,
            dropped_frames: 1,
            late_frames: 4,
            frame_interval_ms: vec![39.0, 80.0],
            render_ms_per_frame: 4.0,
            cpu_seconds: 2.5,
            rss_bytes: 90,
            ..Default::default()
        });
        let s = f.summary();
        assert_eq!(s["frames"], 5);
        assert_eq!(s["dropped_frames"], 1);
        assert_eq!(s["late_frames"], 4);
        assert_eq!(s["frame_interval_ms"]["p50"], 40.0);
        assert_eq!(s["frame_interval_ms"]["max"], 80.0);
        assert_eq!(s["audio_to_mouth_ms"]["p50"], 55.0);
        assert_eq!(s["render_ms_per_frame"], 3.0);
        assert_eq!(s["worker_cpu_seconds"], 2.5);
        assert_eq!(s["worker_peak_rss_bytes"], 100);
        assert_eq!(s["fps"], 20.83, "5 intervals over 240 ms");
    }
}
