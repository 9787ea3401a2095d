//! The OpenAPI document against the real supervisor (with a real worker): the served document is the
//! committed one, and schemathesis, driven by it, finds no 5xx and no answer that the document does not
//! describe (status, content type, body).
//!
//! One real task is launched first (into a LiveKit URL that never answers, so it stays `pending`) and
//! offered to schemathesis as a `task_id`, so `/tasks/{task_id}` and its stop answer with real tasks too.
//!
//! Generated launches start nothing: each carries a random `livekit_token`, and the token is checked before
//! the portrait and the worker, so they end in a documented 400 (giving schemathesis a valid token would
//! start a worker per launch and end in `at_capacity`, a 503 that is no bug). LAUNCH_TIMEOUT_SECONDS is
//! short anyway, so that a launch that did get through would answer quickly rather than hold the run.

use std::process::Command;
use std::time::{Duration, Instant};

use lipcast_e2e::{Supervisor, launch, paths};
use serde_json::Value;

const SECRET: &str = "s3cret-for-the-openapi-test";
/// Fixed, so a finding can be replayed.
const SEED: &str = "19";
/// Test cases per operation: enough to reach every documented status, short enough for CI (about 40 s).
const MAX_EXAMPLES: &str = "25";

fn tmp() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lipcast-openapi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

#[test]
fn schemathesis_finds_nothing() {
    let schemathesis = paths::schemathesis();
    let dir = tmp();
    let sup = Supervisor::start(
        &dir,
        &[("API_SECRET", SECRET), ("LAUNCH_TIMEOUT_SECONDS", "2")],
    )
    .authed(SECRET);
    sup.wait_ready(Duration::from_secs(60));

    let (status, served) = sup.get("/openapi.json");
    assert_eq!(status, 200);
    let committed_path = paths::workspace().join("docs/openapi.json");
    let committed: Value = std::fs::read_to_string(&committed_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("{} does not parse", committed_path.display()));
    assert_eq!(
        served, committed,
        "GET /openapi.json differs from docs/openapi.json"
    );

    let lk = launch::blackhole();
    let body = launch::body(&lk, "whatever", "room-openapi", "av-openapi", "agent");
    let (status, accepted) = sup.post_json("/launch", &body, &[("api-secret", SECRET)]);
    assert_eq!(status, 200, "{accepted}");
    let task_id = accepted["task_id"].as_str().unwrap_or_default().to_owned();
    // Half of the generated task ids are the real one, the others are not (404).
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[dictionaries.tasks]\nvalues = [\"{task_id}\"]\n\n\
             [parameters]\n\"path.task_id\" = {{ dictionary = \"tasks\", probability = 0.5 }}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", config.display()));

    let started = Instant::now();
    let out = Command::new(&schemathesis)
        // Anything it writes (caches, reports) goes to the scratch dir, not the workspace.
        .current_dir(&dir)
        .env("SCHEMATHESIS_HOOKS", paths::workspace().join("tests/api/hooks.py"))
        .args([
            "--config-file",
            &config.display().to_string(),
            "run",
            &sup.url("/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--seed",
            SEED,
            "--max-examples",
            MAX_EXAMPLES,
            // One request at a time: /benchmark and /test-frame share the one warm worker.
            "--workers",
            "1",
            "--header",
            &format!("api-secret: {SECRET}"),
            "--generation-with-security-parameters",
            "false",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", schemathesis.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    eprintln!("schemathesis took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}); supervisor log:\n{}",
        out.status.code(),
        sup.log().join("\n")
    );

    // It is still healthy, and the run left no session behind (but the seeded one, if it was not stopped).
    assert_eq!(sup.get("/health").0, 200);
    assert_eq!(sup.post(&format!("/tasks/{task_id}/stop")).0, 200);
    let (_, tasks) = sup.get("/tasks");
    let active: Vec<&Value> = tasks["tasks"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| t["status"] == "pending" || t["status"] == "running")
                .collect()
        })
        .unwrap_or_default();
    assert!(active.is_empty(), "sessions left running: {active:?}");
}
