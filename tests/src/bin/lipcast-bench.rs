//! lipcast's benchmarks, end to end, with real processes in a network namespace of their own: the supervisor,
//! its workers, LiveKit's Python SDK as the agent and the viewer, and the real `livekit-server` (the pinned one
//! the tests run) on the same machine. Prints a table: each figure the median of several runs, with min and
//! max. Run it with `scripts/bench.sh` (root: namespaces).
//!
//!   lipcast-bench [--runs N] [--quick] [--only SECTION,...] [--drift-minutes M]
//!   lipcast-bench --drift-from DIR
//!
//! The arguments are checked (clap): `--runs x` or an unknown section is an error, not a default.
//!
//! Sections: cold-start, first-frame, audio-to-mouth, pacing, capacity, stages, efficiency, supervisor,
//! side-by-side; and, only when named, drift (a session of M minutes, 60 by default). `--drift-from` prints
//! the drift figures of a run kept with LIPCAST_TEST_KEEP=1 from its window reports, without running one.
//!
//! Drift alone runs in the LiveKit-protocol test room (`tests/room/room.py`): it measures the A/V offset on the
//! sender's clock (RTP timestamps placed through RTCP sender reports, for audio and video), which a viewer on
//! LiveKit's SDK cannot see (it hands out decoded frames and audio without them).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lipcast_e2e::analysis::{self, GRID};
use lipcast_e2e::netns::enter_namespace;
use lipcast_e2e::{Agent, LiveKitServer, RoomProcess, Supervisor, TestEnv, Viewer, launch, paths};
use serde_json::{Value, json};

#[derive(Debug, clap::Parser)]
#[command(
    name = "lipcast-bench",
    about = "lipcast's benchmarks, end to end, in a network namespace of their own (needs root)"
)]
struct Opts {
    /// Runs per figure (each figure is the median, with min and max).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Shorter sessions, for a first look.
    #[arg(long)]
    quick: bool,
    /// Only these sections, comma-separated: cold-start, first-frame, audio-to-mouth, pacing, capacity,
    /// stages, efficiency, supervisor, side-by-side, drift.
    #[arg(long, value_delimiter = ',', value_parser = SECTIONS)]
    only: Option<Vec<String>>,
    /// Length of the drift section's session (only run when named in --only).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    drift_minutes: u64,
    /// Re-read a kept drift run's windows (LIPCAST_TEST_KEEP=1) instead of running one.
    #[arg(long, conflicts_with_all = ["runs", "quick", "only"])]
    drift_from: Option<std::path::PathBuf>,
}

/// The sections `--only` names.
const SECTIONS: [&str; 10] = [
    "cold-start",
    "first-frame",
    "audio-to-mouth",
    "pacing",
    "capacity",
    "stages",
    "efficiency",
    "supervisor",
    "side-by-side",
    "drift",
];

/// One line of the table.
struct Row {
    what: String,
    values: Vec<f64>,
    unit: &'static str,
    target: Option<(&'static str, f64)>,
}

impl Row {
    fn new(what: impl Into<String>, values: Vec<f64>, unit: &'static str) -> Self {
        Self {
            what: what.into(),
            values,
            unit,
            target: None,
        }
    }
    fn target(mut self, op: &'static str, v: f64) -> Self {
        self.target = Some((op, v));
        self
    }
    fn stats(&self) -> (f64, f64, f64) {
        let mut v: Vec<f64> = self
            .values
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        (median, v[0], v[n - 1])
    }
    fn print(&self) {
        let (med, min, max) = self.stats();
        let target = match self.target {
            Some((op, t)) => {
                let met = match op {
                    "<" => med < t,
                    "<=" => med <= t,
                    ">" => med > t,
                    _ => med >= t,
                };
                format!("{op} {t:<8} {}", if met { "met" } else { "NOT met" })
            }
            None => String::new(),
        };
        println!(
            "| {:<58} | {:>10.2} | {:>10.2} | {:>10.2} | {:<6} | {:>2} | {target}",
            self.what,
            med,
            min,
            max,
            self.unit,
            self.values.len()
        );
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Launches avatar `avatar` into `room_name` at LiveKit `url`, serving `agent`, as the plugin does.
fn launch(sup: &Supervisor, url: &str, room_name: &str, avatar: &str, agent: &str) -> String {
    sup.launch(&launch::body(
        url,
        lipcast_e2e::LK_SECRET,
        room_name,
        avatar,
        agent,
    ))
}

fn cold_start(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let mut v = Vec::new();
    for _ in 0..o.runs {
        let t = Instant::now();
        let sup = Supervisor::start(&env.out_dir, &[]);
        sup.wait_ready(Duration::from_secs(120));
        v.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = sup.terminate(Duration::from_secs(20));
    }
    vec![Row::new("cold start: process start -> /ready 200", v, "ms").target("<", 3000.0)]
}

/// `POST /launch` to the first frame a viewer decodes through the real `livekit-server` (the pinned one the
/// tests run), with the warm pool and without it. The viewer is in the room before the launch, as a user is.
fn first_frame(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let lk = LiveKitServer::start(env);
    let mut rows = Vec::new();
    for (label, prewarm) in [
        ("warm pool", "true"),
        ("cold (AUTO_PREWARM=false)", "false"),
    ] {
        let sup = Supervisor::start(
            &env.out_dir,
            &[("AUTO_PREWARM", prewarm), ("WARM_WORKERS", "1")],
        );
        sup.wait_ready(Duration::from_secs(120));
        let mut v = Vec::new();
        for i in 0..o.runs {
            if prewarm == "true" {
                sup.wait_warm(1, Duration::from_secs(60));
            }
            let (room, avatar) = (format!("ff{prewarm}{i}"), format!("ff-{prewarm}-{i}"));
            let mut viewer = Viewer::start(env, &lk.url(), &room, &format!("viewer-{prewarm}-{i}"));
            let t0 = unix_now();
            let task = sup.launch(&launch::body(
                &lk.url(),
                lipcast_e2e::LK_SECRET,
                &room,
                &avatar,
                "nobody",
            ));
            let first = viewer
                .events
                .expect_where("first_frame", Duration::from_secs(30), |f| {
                    f["identity"] == avatar.as_str()
                });
            v.push((first["unix"].as_f64().unwrap_or(f64::NAN) - t0) * 1e3);
            sup.post(&format!("/tasks/{task}/stop"));
            drop(viewer.stop_and_report());
        }
        let row = Row::new(
            format!("first frame: POST /launch -> decoded by a viewer via livekit-server, {label}"),
            v,
            "ms",
        );
        rows.push(if prewarm == "true" {
            row.target("<", 400.0)
        } else {
            row
        });
        let _ = sup.terminate(Duration::from_secs(20));
    }
    rows
}

/// Grid cells that move most while the avatar speaks (the mouth), found from the frames themselves.
fn active_cells(frames: &[analysis::VideoFrame]) -> Vec<usize> {
    let mut var = vec![0.0f64; GRID * GRID];
    for w in frames.windows(2) {
        for (i, v) in var.iter_mut().enumerate() {
            *v += (f64::from(w[1].grid[i]) - f64::from(w[0].grid[i])).abs();
        }
    }
    let mut idx: Vec<usize> = (0..var.len()).collect();
    idx.sort_by(|a, b| var[*b].total_cmp(&var[*a]));
    idx.truncate(6);
    idx
}

fn motion(frames: &[analysis::VideoFrame], cells: &[usize], rest: &[u8]) -> Vec<f64> {
    frames
        .iter()
        .map(|f| {
            cells
                .iter()
                .map(|&i| (f64::from(f.grid[i]) - f64::from(rest[i])).abs())
                .sum::<f64>()
                / cells.len() as f64
        })
        .collect()
}

/// The avatar's frames as the viewer decoded them, and the viewer's clock origin (unix seconds).
fn viewed(report: &Value, avatar: &str) -> (Vec<analysis::VideoFrame>, f64) {
    let p = report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().rev().find(|p| p["identity"] == avatar))
        .cloned()
        .unwrap_or(Value::Null);
    (
        analysis::video_frames(&p, 0),
        report["t0_unix"].as_f64().unwrap_or(0.0),
    )
}

/// The agent and a viewer in `room` on the real server, and the avatar launched into it with a warm worker.
struct Stage {
    agent: Agent,
    viewer: Viewer,
    task: String,
}

fn stage(env: &TestEnv, lk: &LiveKitServer, sup: &Supervisor, room: &str, avatar: &str) -> Stage {
    let agent_id = format!("{room}-agent");
    let mut agent = Agent::start(
        &lk.url(),
        &env.mint(&agent_id, room, "agent", &[]),
        avatar,
        false,
    );
    agent.expect("connected", Duration::from_secs(20));
    let mut viewer = Viewer::start(env, &lk.url(), room, &format!("{room}-viewer"));
    let task = launch(sup, &lk.url(), room, avatar, &agent_id);
    viewer
        .events
        .expect_where("first_frame", Duration::from_secs(30), |f| {
            f["identity"] == avatar
        });
    agent.send("wait_track avatar_video 20");
    agent.expect("track_seen", Duration::from_secs(25));
    Stage {
        agent,
        viewer,
        task,
    }
}

/// Speech sent by the agent to the mouth moving in the frames a viewer decodes through `livekit-server`.
fn audio_to_mouth(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let lk = LiveKitServer::start(env);
    let sup = Supervisor::start(&env.out_dir, &[]);
    sup.wait_ready(Duration::from_secs(120));
    let Stage {
        mut agent,
        viewer,
        task,
    } = stage(env, &lk, &sup, "a2m", "a2m");
    std::thread::sleep(Duration::from_secs(2));
    let wav = env.out_dir.join("a2m.wav");
    analysis::espeak("Hello there, how are you today?", &wav);
    let n = if o.quick { 3 } else { 10 };
    let mut sent = Vec::new();
    for _ in 0..n {
        agent.send(&format!("send_wav {}", wav.display()));
        let s = agent.expect("wav_started", Duration::from_secs(20));
        sent.push(s["unix"].as_f64().unwrap_or(f64::NAN));
        agent.expect("wav_sent", Duration::from_secs(20));
        agent.expect_where("rpc", Duration::from_secs(20), |v| {
            v["method"] == "lk.playback_finished" && v["unix"].as_f64() > s["unix"].as_f64()
        });
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (_, t) = sup.get(&format!("/tasks/{task}"));
    sup.post(&format!("/tasks/{task}/stop"));
    let (frames, t0) = viewed(&viewer.stop_and_report(), "a2m");
    let cells = active_cells(&frames);
    let rest = frames[frames.len().min(30) / 2].grid.clone();
    let m = motion(&frames, &cells, &rest);
    let quiet = m.iter().take(40).copied().fold(0.0, f64::max);
    let mut lat = Vec::new();
    for s in &sent {
        if let Some((f, _)) = frames
            .iter()
            .zip(&m)
            .find(|(f, v)| t0 + f.at > *s && **v > quiet + 3.0)
        {
            lat.push((t0 + f.at - s) * 1e3);
        }
    }
    let p95 = percentile(&lat, 0.95);
    let worker = &t["stats"]["audio_to_mouth_ms"];
    vec![
        Row::new(
            "audio-to-mouth: agent sends speech -> mouth moves, decoded by a viewer",
            lat,
            "ms",
        ),
        Row::new("  the same, p95 of the utterances", vec![p95], "ms").target("<", 120.0),
        Row::new(
            "  the worker's own view: audio arrival -> frame published (p50 of the session)",
            vec![worker["p50"].as_f64().unwrap_or(f64::NAN)],
            "ms",
        ),
    ]
}

/// The `q` quantile (0..=1) of `v`, nearest rank; NaN when empty.
fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn pacing(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let seconds = if o.quick { 20 } else { 60 };
    let lk = LiveKitServer::start(env);
    let sup = Supervisor::start(&env.out_dir, &[]);
    sup.wait_ready(Duration::from_secs(120));
    let Stage {
        mut agent,
        viewer,
        task,
    } = stage(env, &lk, &sup, "pace", "pace");
    let wav = env.out_dir.join("pace.wav");
    analysis::espeak(
        "This is a minute of speech and silence to see how steady the frames are.",
        &wav,
    );
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(seconds) {
        agent.send(&format!("send_wav {} 1", wav.display()));
        agent.expect("wav_sent", Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(2));
    }
    let (_, rec) = sup.get(&format!("/tasks/{task}"));
    sup.post(&format!("/tasks/{task}/stop"));
    let s = &rec["stats"];
    let (frames, _) = viewed(&viewer.stop_and_report(), "pace");
    let (fps, gap) =
        analysis::fps_and_max_gap(&frames, frames[0].at + 1.0, frames[frames.len() - 1].at);
    let p50 = s["frame_interval_ms"]["p50"].as_f64().unwrap_or(f64::NAN);
    let p99 = s["frame_interval_ms"]["p99"].as_f64().unwrap_or(f64::NAN);
    vec![
        Row::new(
            format!("pacing over {seconds} s with speech: fps (worker)"),
            vec![s["fps"].as_f64().unwrap_or(f64::NAN)],
            "fps",
        ),
        Row::new(
            "  capture interval jitter p50 |interval - 40 ms|",
            vec![(p50 - 40.0).abs()],
            "ms",
        ),
        Row::new(
            "  capture interval jitter p99 |interval - 40 ms|",
            vec![(p99 - 40.0).abs()],
            "ms",
        )
        .target("<", 5.0),
        Row::new(
            "  dropped frames",
            vec![s["dropped_frames"].as_f64().unwrap_or(f64::NAN)],
            "frames",
        ),
        Row::new("  fps decoded by the viewer", vec![fps], "fps"),
        Row::new(
            "  longest gap between decoded frames (viewer, arrival clock)",
            vec![gap * 1e3],
            "ms",
        ),
    ]
}

/// Sessions at once through `livekit-server` on the same machine, each speaking; all must hold 25 fps with p99
/// interval < 60 ms. One viewer decodes the first session (a viewer per session would measure the viewers);
/// the server's own CPU is reported apart.
fn capacity(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let lk = LiveKitServer::start(env);
    let wav = env.out_dir.join("cap.wav");
    analysis::espeak(
        "Several avatars are talking at the same time on this machine.",
        &wav,
    );
    let levels: Vec<usize> = if o.quick {
        vec![1, 4]
    } else {
        vec![1, 2, 4, 6, 8, 10, 12]
    };
    let mut best = 0usize;
    let mut rows = Vec::new();
    for &n in &levels {
        let sup = Supervisor::start(
            &env.out_dir,
            &[("MAX_SESSIONS", "16"), ("WARM_WORKERS", &n.to_string())],
        );
        sup.wait_ready(Duration::from_secs(120));
        sup.wait_warm(n as i64, Duration::from_secs(180));
        let mut agents = Vec::new();
        let mut tasks = Vec::new();
        let viewer = Viewer::start(
            env,
            &lk.url(),
            &format!("cap{n}-0"),
            &format!("cap{n}-viewer"),
        );
        for i in 0..n {
            let (r, a, g) = (format!("cap{n}-{i}"), format!("cav{i}"), format!("cag{i}"));
            let mut agent = Agent::start(&lk.url(), &env.mint(&g, &r, "agent", &[]), &a, false);
            agent.expect("connected", Duration::from_secs(30));
            tasks.push(launch(&sup, &lk.url(), &r, &a, &g));
            agents.push(agent);
        }
        for a in &mut agents {
            a.send("wait_track avatar_video 30");
            a.expect("track_seen", Duration::from_secs(40));
        }
        let t = Instant::now();
        let server_cpu0 = lk.cpu_seconds();
        while t.elapsed() < Duration::from_secs(if o.quick { 10 } else { 20 }) {
            for a in &mut agents {
                a.send(&format!("send_wav {} 1", wav.display()));
            }
            for a in &mut agents {
                a.expect("wav_sent", Duration::from_secs(30));
            }
        }
        let stats: Vec<Value> = tasks
            .iter()
            .map(|t| sup.get(&format!("/tasks/{t}")).1["stats"].clone())
            .collect();
        let ok = stats.iter().all(|s| {
            s["fps"].as_f64().is_some_and(|f| f >= 24.5)
                && s["frame_interval_ms"]["p99"]
                    .as_f64()
                    .is_some_and(|p| p < 60.0)
        });
        let fps_min = stats
            .iter()
            .filter_map(|s| s["fps"].as_f64())
            .fold(f64::INFINITY, f64::min);
        let p99_max = stats
            .iter()
            .filter_map(|s| s["frame_interval_ms"]["p99"].as_f64())
            .fold(0.0, f64::max);
        let secs = t.elapsed().as_secs_f64();
        let server_cores = (lk.cpu_seconds() - server_cpu0) / secs;
        let (frames, _) = viewed(&viewer.stop_and_report(), "cav0");
        let (decoded, _) = match (frames.first(), frames.last()) {
            (Some(a), Some(b)) if b.at - a.at > 2.0 => {
                analysis::fps_and_max_gap(&frames, a.at + 1.0, b.at)
            }
            _ => (0.0, 0.0),
        };
        let cpu: Vec<f64> = stats
            .iter()
            .filter_map(|s| s["worker_cpu_seconds"].as_f64())
            .collect();
        let rss: Vec<f64> = stats
            .iter()
            .filter_map(|s| s["worker_peak_rss_bytes"].as_f64())
            .map(|b| b / 1e6)
            .collect();
        println!(
            "capacity: {n} sessions: min fps {fps_min:.2}, max p99 interval {p99_max:.1} ms, {}; \
             the viewer decoded {decoded:.2} fps of the first; livekit-server used {server_cores:.3} cores",
            if ok { "held" } else { "NOT held" }
        );
        for t in &tasks {
            sup.post(&format!("/tasks/{t}/stop"));
        }
        drop(agents);
        let _ = sup.terminate(Duration::from_secs(30));
        if ok {
            best = n;
            rows.clear();
            // CPU over the whole session (join to stop) divided by the speaking span: an upper bound.
            rows.push(
                Row::new(
                    format!("  worker CPU per session at {n} sessions (share of one core)"),
                    cpu.iter().map(|c| c / (secs + 3.0)).collect(),
                    "cores",
                )
                .target("<=", 0.1),
            );
            rows.push(Row::new(
                format!("  livekit-server CPU at {n} sessions (all of them)"),
                vec![server_cores],
                "cores",
            ));
            rows.push(Row::new(
                format!("  fps a viewer decoded of one session at {n} sessions"),
                vec![decoded],
                "fps",
            ));
            rows.push(
                Row::new(
                    format!("  RSS per worker at {n} sessions (peak)"),
                    rss,
                    "MB",
                )
                .target("<", 150.0),
            );
        } else {
            break;
        }
    }
    let mut out = vec![
        Row::new(
            "capacity: sessions holding 25 fps, p99 interval < 60 ms (2 cores, livekit-server too)",
            vec![best as f64],
            "sess",
        )
        .target(">=", 10.0),
    ];
    out.extend(rows);
    out
}

fn stages(o: &Opts) -> (Vec<Row>, f64) {
    let bin = paths::release_bin("lipcast-render-bench");
    let mut totals = Vec::new();
    let (mut feat, mut render, mut i420) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..o.runs {
        let out = Command::new("taskset")
            .args(["-c", "0"])
            .arg(&bin)
            .args(["--iterations", "500", "--threads", "1"])
            .output()
            .unwrap_or_else(|e| panic!("lipcast-render-bench: {e}"));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        totals.push(v["avg_ms"].as_f64().unwrap_or(f64::NAN));
        feat.push(v["stages_ms"]["features"].as_f64().unwrap_or(f64::NAN));
        render.push(v["stages_ms"]["render"].as_f64().unwrap_or(f64::NAN));
        i420.push(v["stages_ms"]["i420"].as_f64().unwrap_or(f64::NAN));
    }
    let med = Row::new("", totals.clone(), "").stats().0;
    (
        vec![
            Row::new(
                "renderer alone, one core: audio -> mouth (features + network)",
                feat,
                "ms/fr",
            ),
            Row::new(
                "renderer alone, one core: render (warp + mouth)",
                render,
                "ms/fr",
            ),
            Row::new("renderer alone, one core: RGBA -> I420", i420, "ms/fr"),
            Row::new("renderer alone, one core: total", totals, "ms/fr"),
        ],
        med,
    )
}

/// The whole session loop's CPU per frame (render + capture + encode + send), against the renderer alone.
fn efficiency(env: &TestEnv, o: &Opts, renderer_ms: f64) -> Vec<Row> {
    let lk = LiveKitServer::start(env);
    let sup = Supervisor::start(&env.out_dir, &[]);
    sup.wait_ready(Duration::from_secs(120));
    let mut agent = Agent::start(
        &lk.url(),
        &env.mint("e-agent", "eff", "agent", &[]),
        "eff",
        false,
    );
    agent.expect("connected", Duration::from_secs(20));
    let task = launch(&sup, &lk.url(), "eff", "eff", "e-agent");
    let wav = env.out_dir.join("eff.wav");
    analysis::espeak("Measuring what the whole loop costs per frame.", &wav);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(if o.quick { 10 } else { 30 }) {
        agent.send(&format!("send_wav {} 1", wav.display()));
        agent.expect("wav_sent", Duration::from_secs(30));
    }
    let (_, rec) = sup.get(&format!("/tasks/{task}"));
    sup.post(&format!("/tasks/{task}/stop"));
    let s = &rec["stats"];
    let cpu_ms = s["worker_cpu_seconds"].as_f64().unwrap_or(f64::NAN) * 1e3;
    let frames = s["frames"].as_f64().unwrap_or(f64::NAN);
    let whole = cpu_ms / frames;
    vec![
        Row::new(
            "whole session loop: worker CPU per frame (render, capture, encode, send)",
            vec![whole],
            "ms/fr",
        ),
        Row::new(
            "pipeline efficiency: renderer-alone ms / whole-loop ms per frame",
            vec![renderer_ms / whole],
            "ratio",
        )
        .target(">=", 0.9),
    ]
}

fn supervisor_load(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let sup = Supervisor::start(
        &env.out_dir,
        &[("MAX_SESSIONS", "4"), ("LIVEKIT_CONNECT_TIMEOUT", "60")],
    );
    sup.wait_ready(Duration::from_secs(120));
    let mut rps = Vec::new();
    for _ in 0..o.runs {
        let out = Command::new("wrk")
            .args(["-t2", "-c64", "-d5s", &sup.url("/health")])
            .output()
            .unwrap_or_else(|e| panic!("wrk (apt-get install wrk; scripts/bench.sh does): {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let v = text
            .lines()
            .find(|l| l.starts_with("Requests/sec:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        rps.push(v);
    }
    // A storm of launches at a LiveKit that never answers (sessions stay pending: admission only).
    let lk = launch::blackhole();
    let url = sup.url("/launch");
    let handles: Vec<_> = (0..500)
        .map(|i| {
            let (url, lk) = (url.clone(), lk.clone());
            let token = lipcast_e2e::token::mint("x", &format!("st{i}"), &format!("st{i}"), "agent", &[]);
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                let t = Instant::now();
                let r = c.post(url).json(&json!({"livekit_url": lk, "livekit_token": token, "room_name": format!("st{i}")})).send();
                (r.map(|r| r.status().as_u16()).unwrap_or(0), t.elapsed().as_secs_f64() * 1e3)
            })
        })
        .collect();
    let res: Vec<(u16, f64)> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    let mut lat: Vec<f64> = res.iter().map(|r| r.1).collect();
    lat.sort_by(f64::total_cmp);
    let admitted = res.iter().filter(|r| r.0 == 200).count() as f64;
    vec![
        Row::new(
            "supervisor: GET /health requests per second (wrk, 64 connections)",
            rps,
            "req/s",
        ),
        Row::new(
            "supervisor: /launch storm of 500, MAX_SESSIONS=4: admitted",
            vec![admitted],
            "sess",
        ),
        Row::new(
            "  /launch latency p50 under the storm",
            vec![lat[lat.len() / 2]],
            "ms",
        ),
        Row::new(
            "  /launch latency p99 under the storm",
            vec![lat[lat.len() * 99 / 100]],
            "ms",
        ),
    ]
}

/// The same workload through LiveKit's Python avatar pattern (AVSynchronizer) and through lipcast.
fn side_by_side(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let seconds = if o.quick { 10.0 } else { 30.0 };
    let frames = env.out_dir.join("frames.i420");
    let st = Command::new(paths::release_bin("lipcast-render-bench"))
        .args(["--iterations", "10", "--dump-count", "250", "--dump-frames"])
        .arg(&frames)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success());
    let wav = env.out_dir.join("sbs.wav");
    let (rate, samples) = analysis::espeak(
        "The same frames and the same speech, published two ways.",
        &wav,
    );
    // 24 kHz mono like lipcast's track.
    let _ = (rate, samples);
    let lk = LiveKitServer::start(env);
    let mut py = Vec::new();
    let mut lc = Vec::new();
    for _ in 0..o.runs.min(3) {
        let out = Command::new(paths::python())
            .arg(paths::room_dir().join("py_avatar.py"))
            .args([
                "--url",
                &lk.url(),
                "--token",
                &env.mint("py-avatar", "sbs-py", "agent", &[]),
            ])
            .arg("--frames")
            .arg(&frames)
            .arg("--wav")
            .arg(&wav)
            .args(["--seconds", &seconds.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("py_avatar.py: {e}"));
        let v: Value = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        py.push(
            v["cpu_seconds"].as_f64().unwrap_or(f64::NAN)
                / v["seconds"].as_f64().unwrap_or(f64::NAN),
        );

        let sup = Supervisor::start(&env.out_dir, &[]);
        sup.wait_ready(Duration::from_secs(120));
        let mut agent = Agent::start(
            &lk.url(),
            &env.mint("sbs-agent", "sbs", "agent", &[]),
            "sbs",
            false,
        );
        agent.expect("connected", Duration::from_secs(20));
        let task = launch(&sup, &lk.url(), "sbs", "sbs", "sbs-agent");
        let t = Instant::now();
        while t.elapsed().as_secs_f64() < seconds {
            agent.send(&format!("send_wav {} 1", wav.display()));
            agent.expect("wav_sent", Duration::from_secs(30));
        }
        let (_, rec) = sup.get(&format!("/tasks/{task}"));
        sup.post(&format!("/tasks/{task}/stop"));
        lc.push(
            rec["stats"]["worker_cpu_seconds"]
                .as_f64()
                .unwrap_or(f64::NAN)
                / (t.elapsed().as_secs_f64() + 1.0),
        );
        drop(agent);
        let _ = sup.terminate(Duration::from_secs(20));
    }
    let ratio: Vec<f64> = py.iter().zip(&lc).map(|(p, l)| p / l).collect();
    vec![
        Row::new(
            "side by side: Python AVSynchronizer publisher, pre-rendered frames",
            py,
            "cores",
        ),
        Row::new("side by side: lipcast session, rendering live", lc, "cores"),
        Row::new(
            "side by side: CPU per session, Python / lipcast",
            ratio,
            "ratio",
        ),
    ]
}

/// Windows below this mouth/envelope correlation are left out of the drift figures.
const MIN_DRIFT_CORRELATION: f64 = 0.4;
/// Length of a drift recording window.
const DRIFT_WINDOW: Duration = Duration::from_secs(20);
/// The last window ends this long before the run does.
const DRIFT_TAIL: Duration = Duration::from_secs(5);

/// A long session of alternating speech and silence: the A/V offset on the sender's clock, measured in 20 s
/// windows at the start, every 10 minutes and at the end, must not drift.
fn drift(env: &TestEnv, o: &Opts) -> Vec<Row> {
    let total = Duration::from_secs(o.drift_minutes * 60);
    // The room ends itself after --duration seconds (600 by default): give it the whole run and a margin.
    let lifetime = (total.as_secs() + 600).to_string();
    let room = RoomProcess::start_with(env, 7880, &["--no-record", "--duration", &lifetime]);
    let sup = Supervisor::start(&env.out_dir, &[("MAX_SESSION_SECONDS", "86400")]);
    sup.wait_ready(Duration::from_secs(120));
    let mut agent = Agent::start(
        &room.url(),
        &env.mint("d-agent", "drift", "agent", &[]),
        "drift",
        false,
    );
    agent.expect("connected", Duration::from_secs(20));
    let task = launch(&sup, &room.url(), "drift", "drift", "d-agent");
    agent.send("wait_track avatar_video 20");
    agent.expect("track_seen", Duration::from_secs(25));
    let wav = env.out_dir.join("drift.wav");
    analysis::espeak(
        "Speech, then silence, again and again, for as long as the run lasts.",
        &wav,
    );
    let window = DRIFT_WINDOW;
    let start = Instant::now();
    let mut marks: Vec<Duration> = vec![Duration::from_secs(5)];
    let mut m = Duration::from_secs(600);
    while m + window + Duration::from_secs(30) < total {
        marks.push(m);
        m += Duration::from_secs(600);
    }
    marks.push(total.saturating_sub(window + DRIFT_TAIL));
    let mut offsets = Vec::new();
    for mark in marks {
        // Speech and silence until the window opens, then through it.
        let mut recording = false;
        loop {
            let t = start.elapsed();
            if !recording && t >= mark {
                room.control("/control/record?on=1");
                recording = true;
            }
            if recording && t >= mark + window {
                break;
            }
            agent.send(&format!("send_wav {}", wav.display()));
            let sent = agent.expect("wav_sent", Duration::from_secs(30));
            // The agent sends faster than real time: wait out the speech, then 5 s of silence.
            let speech = sent["seconds"].as_f64().unwrap_or(5.0);
            std::thread::sleep(Duration::from_secs_f64(speech + 5.0));
        }
        room.control("/control/record?on=0");
        std::thread::sleep(Duration::from_millis(800)); // the report is rewritten twice a second
        let report = room.report();
        // Each window's report stays next to its WAV (kept with LIPCAST_TEST_KEEP): --drift-from reads them.
        let _ = std::fs::write(
            env.out_dir
                .join(format!("drift-window-{}.json", mark.as_secs())),
            report.to_string(),
        );
        if let Some(o) = window_offset(&report, mark) {
            offsets.push(o);
        }
    }
    sup.post(&format!("/tasks/{task}/stop"));
    drift_rows(&offsets, o.drift_minutes)
}

/// The A/V offset (ms) of one recorded drift window, or None when the window measures nothing.
fn window_offset(report: &Value, mark: Duration) -> Option<(Duration, f64)> {
    let frames = report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().rev().find(|p| p["identity"] == "drift"))
        .map(|p| analysis::video_frames(p, 0))
        .unwrap_or_default();
    let at = analysis::most_active(&frames, 6);
    let rx = analysis::received(report, "drift", at);
    let (shift, c) = analysis::av_shift(&rx.video_t, &rx.mouth, &rx.audio_t, &rx.audio_env, 0.2);
    println!(
        "drift: window at {:>5.0} s: A/V offset {:+.0} ms (correlation {c:.2})",
        mark.as_secs_f64(),
        shift * 1e3
    );
    // A window whose mouth track hardly correlates with the audio envelope (the room's decoder fell behind,
    // say) measures nothing: leave it out rather than report its shift.
    if c >= MIN_DRIFT_CORRELATION {
        Some((mark, shift * 1e3))
    } else {
        println!(
            "drift: window at {:>5.0} s left out (correlation {c:.2} < {MIN_DRIFT_CORRELATION})",
            mark.as_secs_f64()
        );
        None
    }
}

/// `--drift-from DIR`: the drift figures of a kept run, from its drift-window-SECONDS.json reports.
fn drift_from(dir: &std::path::Path) -> Vec<Row> {
    let mut windows: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let secs = path
                .file_name()?
                .to_str()?
                .strip_prefix("drift-window-")?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((secs, path))
        })
        .collect();
    windows.sort();
    // The run's length, from where its last window opened.
    let tail = (DRIFT_WINDOW + DRIFT_TAIL).as_secs();
    let minutes = windows.last().map_or(0, |w| (w.0 + tail).div_ceil(60));
    let offsets: Vec<(Duration, f64)> = windows
        .iter()
        .filter_map(|(secs, path)| {
            let text = std::fs::read_to_string(path).ok()?;
            let mut report: Value = serde_json::from_str(&text).ok()?;
            // The report names its WAVs by absolute path: find them in DIR, wherever the run was moved.
            for p in report["participants"].as_array_mut()? {
                for a in p["audio"].as_array_mut().into_iter().flatten() {
                    let name = std::path::Path::new(a["wav"].as_str().unwrap_or_default())
                        .file_name()
                        .map(|n| dir.join(n).display().to_string());
                    if let Some(name) = name {
                        a["wav"] = Value::String(name);
                    }
                }
            }
            window_offset(&report, Duration::from_secs(*secs))
        })
        .collect();
    drift_rows(&offsets, minutes)
}

/// The drift table rows from the measurable windows' offsets.
fn drift_rows(offsets: &[(Duration, f64)], minutes: u64) -> Vec<Row> {
    if offsets.len() < 2 {
        println!(
            "drift: {} measurable window(s); a drift needs two: nothing to report",
            offsets.len()
        );
        return Vec::new();
    }
    let first = offsets.first().map_or(f64::NAN, |o| o.1);
    let last = offsets.last().map_or(f64::NAN, |o| o.1);
    let worst = offsets.iter().map(|o| o.1.abs()).fold(f64::NAN, f64::max);
    vec![
        Row::new(
            format!("A/V offset, first window (sender clock), {minutes} min run"),
            vec![first],
            "ms",
        ),
        Row::new("A/V offset, last window", vec![last], "ms"),
        Row::new(
            format!("A/V offset, largest |offset| of {} windows", offsets.len()),
            vec![worst],
            "ms",
        )
        .target("<=", 40.0),
        Row::new(
            "A/V drift over the run (last - first)",
            vec![(last - first).abs()],
            "ms",
        )
        .target("<=", 40.0),
    ]
}

fn main() {
    let o = <Opts as clap::Parser>::parse();
    if let Some(dir) = &o.drift_from {
        for r in drift_from(dir) {
            r.print();
        }
        return;
    }
    let env = enter_namespace("lipcast-bench", Duration::from_secs(7200));
    let want = |s: &str| o.only.as_ref().is_none_or(|set| set.iter().any(|x| x == s));
    println!(
        "lipcast benchmarks on {} ({} CPUs), {} run(s) per figure; median, min, max",
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.runs
    );
    println!(
        "| {:<58} | {:>10} | {:>10} | {:>10} | {:<6} | {:>2} | target",
        "figure", "median", "min", "max", "unit", "n"
    );
    println!("|{}|", "-".repeat(130));
    let mut renderer_ms = f64::NAN;
    type Section<'a> = (&'a str, Box<dyn Fn(&TestEnv, &Opts) -> Vec<Row> + 'a>);
    let sections: Vec<Section> = vec![
        ("cold-start", Box::new(cold_start)),
        ("first-frame", Box::new(first_frame)),
        ("audio-to-mouth", Box::new(audio_to_mouth)),
        ("pacing", Box::new(pacing)),
        ("capacity", Box::new(capacity)),
    ];
    for (name, f) in &sections {
        if want(name) {
            for r in f(&env, &o) {
                r.print();
            }
        }
    }
    if want("stages") || want("efficiency") {
        let (rows, med) = stages(&o);
        renderer_ms = med;
        for r in rows {
            r.print();
        }
    }
    if want("efficiency") {
        for r in efficiency(&env, &o, renderer_ms) {
            r.print();
        }
    }
    if want("supervisor") {
        for r in supervisor_load(&env, &o) {
            r.print();
        }
    }
    if want("side-by-side") {
        for r in side_by_side(&env, &o) {
            r.print();
        }
    }
    // Not in the default run: it takes as long as --drift-minutes (60).
    if o.only
        .as_ref()
        .is_some_and(|set| set.iter().any(|x| x == "drift"))
    {
        for r in drift(&env, &o) {
            r.print();
        }
    }
    if std::env::var_os("LIPCAST_TEST_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&env.out_dir);
    }
}
