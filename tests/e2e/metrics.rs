//! `/metrics` is valid OpenMetrics (parsed by prometheus_client's parser), names every metric the deployment
//! files use, and its counters move as sessions start, fail and stop.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lipcast_e2e::{Agent, LiveKitServer, Supervisor, TestEnv, in_namespace, launch, paths};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// The scrape, parsed: family -> samples.
fn scrape(sup: &Supervisor) -> Value {
    let text = sup.metrics_text();
    let mut child = Command::new(paths::python())
        .arg(paths::room_dir().join("parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("parse_metrics.py: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)["families"].clone()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(m: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    m[family]["samples"]
        .as_array()
        .and_then(|v| {
            v.iter().find(|s| {
                s["name"] == name && labels.iter().all(|(k, want)| s["labels"][*k] == *want)
            })
        })
        .and_then(|s| s["value"].as_f64())
        .unwrap_or(f64::NAN)
}

#[test]
fn metrics_are_valid_and_move() {
    in_namespace(
        "metrics_are_valid_and_move",
        Duration::from_secs(300),
        metrics_move,
    );
}

fn metrics_move(env: &TestEnv) {
    let room = LiveKitServer::start(env);
    let sup = Supervisor::start(
        &env.out_dir,
        &[("WARM_WORKERS", "1"), ("MAX_SESSIONS", "3")],
    );
    sup.wait_ready(Duration::from_secs(60));
    sup.wait_warm(1, Duration::from_secs(60));
    // Per-worker series appear at a worker's first health check (every second).
    std::thread::sleep(Duration::from_millis(1_500));
    let before = scrape(&sup);
    // Every metric the dashboard, alerts and HPA use exists (OpenMetrics family names drop _total / _info).
    let listed =
        std::fs::read_to_string(paths::workspace().join("deploy/metrics.txt")).unwrap_or_default();
    for name in listed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let family = name.trim_end_matches("_total").trim_end_matches("_info");
        assert!(
            before.get(family).is_some(),
            "{name} (family {family}) is not exposed"
        );
    }
    let mut agent = Agent::start(
        &room.url(),
        &env.mint("agent", "m", "agent", &[]),
        "avatar",
        false,
    );
    agent.expect("connected", Duration::from_secs(20));
    let launch = |room_name: &str, avatar: &str, image: Vec<u8>| {
        let mut body = launch::body(
            &room.url(),
            lipcast_e2e::LK_SECRET,
            room_name,
            avatar,
            "agent",
        );
        body["image"] = Value::from(STANDARD.encode(image));
        sup.post_json("/launch", &body, &[])
    };
    // A session that runs, speaks and is stopped.
    let (s, r) = launch("m", "avatar", paths::default_portrait());
    assert_eq!(s, 200, "{r}");
    let task = r["task_id"].as_str().unwrap_or_default().to_owned();
    sup.wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");
    agent.send("send_speech 2 24000 1");
    agent.expect_where("rpc", Duration::from_secs(20), |v| {
        v["method"] == "lk.playback_finished"
    });
    std::thread::sleep(Duration::from_secs(6)); // a stats report
    let during = scrape(&sup);
    let rss_series = during["lipcast_worker_resident_memory_bytes"]["samples"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(rss_series >= 1, "no per-worker RSS while workers run");
    sup.post(&format!("/tasks/{task}/stop"));
    // A session whose worker crashes.
    let (_, r) = launch("m2", "avatar2", paths::default_portrait());
    let crashed = r["task_id"].as_str().unwrap_or_default().to_owned();
    sup.wait_task(&crashed, Duration::from_secs(10), |t| {
        t["status"] == "running"
    });
    let pid = sup
        .log()
        .iter()
        .filter(|l| l.contains(&crashed) && l.contains("handed to a worker"))
        .find_map(|l| {
            l.split("pid=")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<i32>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no pid for {crashed}"));
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    sup.wait_task(&crashed, Duration::from_secs(5), |t| {
        t["status"] == "failed"
    });
    // A refused portrait.
    let (s, _) = launch("m3", "avatar3", b"not an image".to_vec());
    assert_eq!(s, 400);
    std::thread::sleep(Duration::from_secs(2));
    let after = scrape(&sup);

    let delta = |family: &str, name: &str, labels: &[(&str, &str)]| {
        let (a, b) = (
            value(&before, family, name, labels),
            value(&after, family, name, labels),
        );
        let d = b - if a.is_nan() { 0.0 } else { a };
        println!("MEASURED {name}{labels:?}: {a} -> {b}");
        d
    };
    assert_eq!(
        delta(
            "lipcast_launches",
            "lipcast_launches_total",
            &[("result", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "lipcast_launches",
            "lipcast_launches_total",
            &[("result", "rejected")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "lipcast_tasks_finished",
            "lipcast_tasks_finished_total",
            &[("status", "cancelled")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "lipcast_tasks_finished",
            "lipcast_tasks_finished_total",
            &[("status", "failed")]
        ),
        1.0
    );
    assert!(
        delta(
            "lipcast_worker_exits",
            "lipcast_worker_exits_total",
            &[("kind", "crashed")]
        ) >= 1.0
    );
    assert!(delta("lipcast_worker_spawns", "lipcast_worker_spawns_total", &[]) >= 2.0);
    assert!(delta("lipcast_frames", "lipcast_frames_total", &[]) > 100.0);
    assert!(
        delta(
            "lipcast_frame_interval_seconds",
            "lipcast_frame_interval_seconds_count",
            &[]
        ) > 100.0
    );
    assert!(
        delta(
            "lipcast_time_to_first_frame_seconds",
            "lipcast_time_to_first_frame_seconds_count",
            &[("pool", "warm")]
        ) >= 1.0
    );
    assert!(
        delta(
            "lipcast_audio_to_mouth_latency_seconds",
            "lipcast_audio_to_mouth_latency_seconds_count",
            &[]
        ) >= 1.0
    );
    assert!(
        delta(
            "lipcast_session_duration_seconds",
            "lipcast_session_duration_seconds_count",
            &[]
        ) >= 2.0
    );
    assert_eq!(
        value(&after, "lipcast_model_ready", "lipcast_model_ready", &[]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "lipcast_build",
            "lipcast_build_info",
            &[("device", "cpu")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "lipcast_sessions_max", "lipcast_sessions_max", &[]),
        3.0
    );
    let a2m = value(
        &after,
        "lipcast_audio_to_mouth_latency_seconds",
        "lipcast_audio_to_mouth_latency_seconds_sum",
        &[],
    ) / value(
        &after,
        "lipcast_audio_to_mouth_latency_seconds",
        "lipcast_audio_to_mouth_latency_seconds_count",
        &[],
    );
    println!("MEASURED mean audio-to-mouth latency {:.0} ms", a2m * 1e3);
}
