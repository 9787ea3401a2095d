//! Prometheus metrics of the whole container (supervisor and its workers), served by `GET /metrics` in the
//! OpenMetrics text format. Names: `lipcast_` prefix, units in names, `_total` on counters.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PidLabel {
    pub pid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    device: String,
}

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric; cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub model_ready: Gauge,
    pub sessions_active: Gauge,
    pub sessions_max: Gauge,
    pub warm_workers: Gauge,
    pub launches: Family<ResultLabel, Counter>,
    pub tasks_finished: Family<StatusLabel, Counter>,
    pub session_duration: Histogram,
    pub time_to_first_frame: Family<PoolLabel, Histogram>,
    pub audio_to_mouth: Histogram,
    pub frame_interval: Histogram,
    pub av_offset: Histogram,
    pub frames: Counter,
    pub frames_dropped: Counter,
    pub worker_spawns: Counter,
    pub worker_exits: Family<KindLabel, Counter>,
    pub worker_kills: Family<ReasonLabel, Counter>,
    pub worker_rss: Family<PidLabel, Gauge>,
    pub worker_cpu: Family<PidLabel, FloatCounter>,
    pub gpu_memory: Gauge,
    pub render_seconds: FloatGauge,
    build: Arc<Mutex<Option<String>>>,
}

fn ms_buckets() -> Vec<f64> {
    // Seconds, fine around one frame (40 ms).
    vec![
        0.005, 0.01, 0.02, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0,
    ]
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0,
    ]
}

impl Metrics {
    pub fn new(max_sessions: u32) -> Self {
        let mut registry = Registry::with_prefix("lipcast");
        let m = Self {
            registry: Arc::new(Mutex::new(Registry::default())),
            model_ready: Gauge::default(),
            sessions_active: Gauge::default(),
            sessions_max: Gauge::default(),
            warm_workers: Gauge::default(),
            launches: Family::default(),
            tasks_finished: Family::default(),
            session_duration: Histogram::new([
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
            time_to_first_frame: Family::new_with_constructor(|| {
                Histogram::new([0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0])
            }),
            audio_to_mouth: Histogram::new(latency_buckets()),
            frame_interval: Histogram::new(ms_buckets()),
            av_offset: Histogram::new([0.0, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2]),
            frames: Counter::default(),
            frames_dropped: Counter::default(),
            worker_spawns: Counter::default(),
            worker_exits: Family::default(),
            worker_kills: Family::default(),
            worker_rss: Family::default(),
            worker_cpu: Family::default(),
            gpu_memory: Gauge::default(),
            render_seconds: FloatGauge::default(),
            build: Arc::new(Mutex::new(None)),
        };
        m.sessions_max.set(i64::from(max_sessions));
        // Every label value exists from the start (at 0), so dashboards and rate() see a series before the
        // first event.
        for result in ["accepted", "existing", "at_capacity", "rejected", "error"] {
            let _ = m.launches.get_or_create(&ResultLabel { result });
        }
        for status in ["completed", "failed", "cancelled"] {
            let _ = m.tasks_finished.get_or_create(&StatusLabel { status });
        }
        for pool in ["warm", "cold"] {
            let _ = m.time_to_first_frame.get_or_create(&PoolLabel { pool });
        }
        for kind in ["clean", "crashed", "killed"] {
            let _ = m.worker_exits.get_or_create(&KindLabel { kind });
        }
        for reason in ["hung", "stopped", "shutdown", "excess"] {
            let _ = m.worker_kills.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "model_ready",
            "1 once a worker loaded and verified the model pack",
            m.model_ready.clone(),
        );
        registry.register(
            "sessions_active",
            "Sessions pending or running",
            m.sessions_active.clone(),
        );
        registry.register("sessions_max", "MAX_SESSIONS", m.sessions_max.clone());
        registry.register(
            "warm_workers",
            "Idle workers with the model loaded",
            m.warm_workers.clone(),
        );
        registry.register("launches", "POST /launch by result", m.launches.clone());
        registry.register(
            "tasks_finished",
            "Tasks that reached a final status",
            m.tasks_finished.clone(),
        );
        registry.register_with_unit(
            "session_duration",
            "Length of finished sessions",
            Unit::Seconds,
            m.session_duration.clone(),
        );
        registry.register_with_unit(
            "time_to_first_frame",
            "POST /launch to the first published frame, by warm or cold worker",
            Unit::Seconds,
            m.time_to_first_frame.clone(),
        );
        registry.register_with_unit(
            "audio_to_mouth_latency",
            "Agent audio arriving at an idle avatar to the frame showing it published",
            Unit::Seconds,
            m.audio_to_mouth.clone(),
        );
        registry.register_with_unit(
            "frame_interval",
            "Interval between consecutive published frames",
            Unit::Seconds,
            m.frame_interval.clone(),
        );
        registry.register_with_unit(
            "av_offset",
            "Audio queued ahead of each published video frame (how much later it is heard than seen)",
            Unit::Seconds,
            m.av_offset.clone(),
        );
        registry.register("frames", "Video frames published", m.frames.clone());
        registry.register(
            "frames_dropped",
            "Frames not published in time (stalls)",
            m.frames_dropped.clone(),
        );
        registry.register(
            "worker_spawns",
            "Worker processes started",
            m.worker_spawns.clone(),
        );
        registry.register(
            "worker_exits",
            "Worker processes reaped, by how they ended",
            m.worker_exits.clone(),
        );
        registry.register(
            "worker_kills",
            "Worker processes killed by the supervisor, by reason",
            m.worker_kills.clone(),
        );
        registry.register_with_unit(
            "worker_resident_memory",
            "Resident memory of each live worker",
            Unit::Bytes,
            m.worker_rss.clone(),
        );
        registry.register_with_unit(
            "worker_cpu",
            "CPU time of each live worker",
            Unit::Seconds,
            m.worker_cpu.clone(),
        );
        registry.register_with_unit(
            "gpu_memory_used",
            "GPU memory used by workers (0 on CPU)",
            Unit::Bytes,
            m.gpu_memory.clone(),
        );
        registry.register_with_unit(
            "render_cpu_per_frame",
            "CPU time of the render stage per frame, last report of any session",
            Unit::Seconds,
            m.render_seconds.clone(),
        );
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = registry;
        m
    }

    /// Registers `lipcast_build_info{version, device}` once the device is known.
    pub fn set_build_info(&self, device: &str) {
        let mut build = self.build.lock().unwrap_or_else(|p| p.into_inner());
        if build.as_deref() == Some(device) {
            return;
        }
        if build.is_none() {
            let info = Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                device: device.into(),
            });
            self.registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .register("build", "Build and inference device", info);
        }
        *build = Some(device.to_owned());
    }

    pub fn launch(&self, result: &'static str) {
        self.launches.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn worker_exit(&self, kind: &'static str, pid: u32) {
        self.worker_exits.get_or_create(&KindLabel { kind }).inc();
        let label = PidLabel {
            pid: pid.to_string(),
        };
        self.worker_rss.remove(&label);
        self.worker_cpu.remove(&label);
    }

    pub fn worker_kill(&self, reason: &'static str) {
        self.worker_kills
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A worker's figures from a health check.
    pub fn worker_figures(&self, pid: u32, rss: u64, cpu_seconds: f64, last_cpu: &mut f64) {
        let label = PidLabel {
            pid: pid.to_string(),
        };
        self.worker_rss
            .get_or_create(&label)
            .set(i64::try_from(rss).unwrap_or(i64::MAX));
        let delta = cpu_seconds - *last_cpu;
        if delta > 0.0 {
            self.worker_cpu.get_or_create(&label).inc_by(delta);
            *last_cpu = cpu_seconds;
        }
    }

    /// The exposition (OpenMetrics text).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_follow_conventions() {
        let m = super::Metrics::new(8);
        m.launch("accepted");
        m.set_build_info("cpu");
        m.time_to_first_frame
            .get_or_create(&super::PoolLabel { pool: "warm" })
            .observe(0.3);
        let text = m.encode().expect("encode");
        for name in [
            "lipcast_sessions_max 8",
            "lipcast_launches_total{result=\"accepted\"} 1",
            "lipcast_build_info{version=",
            "lipcast_time_to_first_frame_seconds_bucket{le=\"0.4\",pool=\"warm\"} 1",
            "lipcast_frame_interval_seconds_count 0",
            "# EOF",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
