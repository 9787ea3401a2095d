//! What a new user sees when the server starts on its defaults: one warm worker (not a second one started
//! and stopped as "excess"), and a log with one line per event, one timestamp each and every field once, in
//! text and in JSON, the workers' lines included.

use std::time::Duration;

use lipcast_e2e::Supervisor;
use serde_json::Value;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lipcast-startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

/// Starts on the defaults (WARM_WORKERS=1, AUTO_PREWARM on), waits until ready and a few refill passes of the
/// pool (one a second) have run.
fn start_settled(name: &str, env: &[(&str, &str)]) -> Supervisor {
    let sup = Supervisor::start(&tmp(name), env);
    sup.wait_ready(Duration::from_secs(60));
    sup.wait_warm(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    sup
}

fn assert_one_warm_worker(sup: &Supervisor) {
    let log = sup.log().join("\n");
    assert_eq!(
        sup.metric("lipcast_worker_spawns_total"),
        Some(1.0),
        "the defaults keep one warm worker: exactly one must have been started; log:\n{log}"
    );
    assert_eq!(
        sup.worker_pids().len(),
        1,
        "one worker process; log:\n{log}"
    );
    assert!(
        !log.contains("excess"),
        "no worker may be stopped as excess at start-up; log:\n{log}"
    );
}

/// True for an RFC 3339 UTC timestamp as tracing prints it (`2026-12-03T09:50:00.123456Z`).
fn is_timestamp(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && word.ends_with('Z')
}

#[test]
fn default_start_keeps_one_warm_worker_and_logs_text_one_line_per_event() {
    let sup = start_settled("text", &[]);
    assert_one_warm_worker(&sup);
    let log = sup.log();
    let worker_pid = sup.worker_pids()[0];
    for line in &log {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.first().is_some_and(|w| is_timestamp(w)),
            "every line starts with its timestamp: {line:?}"
        );
        assert_eq!(
            words.iter().filter(|w| is_timestamp(w)).count(),
            1,
            "one timestamp per line: {line:?}"
        );
        let levels = words
            .iter()
            .filter(|w| matches!(**w, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE"))
            .count();
        assert_eq!(levels, 1, "one level per line: {line:?}");
        for field in ["pid=", "task_id="] {
            assert!(
                words.iter().filter(|w| w.contains(field)).count() <= 1,
                "{field} at most once: {line:?}"
            );
        }
    }
    let listening = log
        .iter()
        .find(|l| l.contains("lipcast-worker listening"))
        .unwrap_or_else(|| panic!("the worker's first line is missing:\n{}", log.join("\n")));
    assert!(
        listening.contains(&format!("pid={worker_pid}")),
        "the worker's line names its pid: {listening:?}"
    );

    // A clean stop says so and nothing else: no warning about the store closing under a worker.
    let (status, log) = sup.terminate_with_log(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    let complaints: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !l.contains("API_SECRET is not set"))
        .collect();
    assert!(
        complaints.is_empty(),
        "start-up and stop on the defaults warn: {complaints:#?}"
    );
}

#[test]
fn default_start_logs_json_one_object_per_line_workers_included() {
    let sup = start_settled("json", &[("LOG_FORMAT", "json")]);
    assert_one_warm_worker(&sup);
    let log = sup.log();
    let worker_pid = sup.worker_pids()[0];
    let events: Vec<Value> = log
        .iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("every line is one JSON object ({e}): {line:?}"));
            assert!(
                v.is_object() && v["timestamp"].is_string() && v["level"].is_string(),
                "every line has its timestamp and level: {line:?}"
            );
            v
        })
        .collect();
    let listening = events
        .iter()
        .find(|e| e["message"] == "lipcast-worker listening")
        .unwrap_or_else(|| panic!("the worker's first line is missing:\n{}", log.join("\n")));
    assert_eq!(
        listening["pid"],
        Value::from(worker_pid),
        "the worker's line names its pid: {listening}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("ready"))),
        "the supervisor's own lines are there too"
    );
}
