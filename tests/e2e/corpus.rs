//! The committed bad-input corpus (`tests/corpus/requests.jsonl`, hundreds of hostile requests) against the
//! real supervisor over real HTTP, with real workers judging the portraits: every case gets the 4xx JSON error
//! it expects (never a 5xx), the server stays up, no task is left behind, no worker is killed or leaked, and
//! neither the secret nor a token is echoed back. Runs in a namespace of its own, so no portrait URL can
//! reach anything outside it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lipcast_e2e::corpus::{self, Context};
use lipcast_e2e::supervisor::{children_of, proc_stat};
use lipcast_e2e::{Supervisor, TestEnv, in_namespace, launch};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(300);
const SECRET: &str = "corpus-api-secret-3f9a";

#[test]
fn corpus_hostile_requests() {
    in_namespace("corpus_hostile_requests", LIMIT, hostile_requests);
}

fn authed(sup: &Supervisor, path: &str) -> Value {
    sup.http
        .get(sup.url(path))
        .header("api-secret", SECRET)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn hostile_requests(env: &TestEnv) {
    let lk = launch::blackhole();
    let sup = Supervisor::start(
        &env.out_dir,
        &[
            ("API_SECRET", SECRET),
            ("MAX_SESSIONS", "2"),
            ("WARM_WORKERS", "1"),
            ("LIVEKIT_CONNECT_TIMEOUT", "60"),
            ("IMAGE_FETCH_TIMEOUT_SECONDS", "3"),
        ],
    );
    sup.wait_ready(Duration::from_secs(60));
    sup.wait_warm(1, Duration::from_secs(60));
    let workers_before = sup.worker_pids().len();
    let ctx = Context {
        lk: lk.clone(),
        secret: SECRET.into(),
    };
    let cases = corpus::load();
    assert!(
        cases.len() >= 300,
        "the corpus holds {} cases; it must hold at least 300",
        cases.len()
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let base = sup.url("");
    let token_sig = ctx
        .token("corpus")
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_owned();
    let mut failures = Vec::new();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut slowest = (Duration::ZERO, String::new());
    let t = Instant::now();
    for (i, case) in cases.iter().enumerate() {
        let started = Instant::now();
        let answer = match corpus::send(&client, &base, case, &ctx) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{} ({}): {e}", case.id, case.what));
                continue;
            }
        };
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, case.id.clone());
        }
        *by_status.entry(answer.status).or_default() += 1;
        if let Some(why) = corpus::mismatch(case, &answer) {
            failures.push(why);
        }
        if answer.status >= 500 {
            failures.push(format!("{}: a 5xx answer ({})", case.id, answer.status));
        }
        if answer.text.contains(SECRET)
            || (!token_sig.is_empty() && answer.text.contains(&token_sig))
        {
            failures.push(format!("{}: the answer echoes a secret or token", case.id));
        }
        if i % 50 == 49 {
            let (s, _) = sup.get("/health");
            assert_eq!(s, 200, "/health after case {}", case.id);
        }
    }
    let elapsed = t.elapsed();
    println!(
        "MEASURED corpus: {} hostile requests in {:.1} s (slowest {} ms: {}), answers by status {by_status:?}, {} mismatches",
        cases.len(),
        elapsed.as_secs_f64(),
        slowest.0.as_millis(),
        slowest.1,
        failures.len()
    );
    for f in &failures {
        println!("CORPUS MISMATCH {f}");
    }

    // The server is up, nothing was admitted, no worker was killed or left behind.
    let (s, health) = sup.get("/health");
    assert_eq!(s, 200, "{health}");
    assert_eq!(health["active_sessions"], 0, "{health}");
    let tasks = authed(&sup, "/tasks");
    assert_eq!(
        tasks["tasks"].as_array().map(Vec::len),
        Some(0),
        "hostile requests left tasks behind: {tasks}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while sup.worker_pids().len() != workers_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let workers_after = sup.worker_pids().len();
    let zombies = children_of(sup.pid())
        .into_iter()
        .filter(|c| proc_stat(*c).is_some_and(|s| s.state == 'Z'))
        .count();
    let killed: Vec<String> = sup
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("lipcast_worker_kills_total{"))
        .filter(|l| l.split_whitespace().last() != Some("0"))
        .map(str::to_owned)
        .collect();
    println!(
        "MEASURED corpus aftermath: workers {workers_before} -> {workers_after}, zombies {zombies}, worker kills {killed:?}"
    );
    assert_eq!(workers_after, workers_before, "worker processes leaked");
    assert_eq!(zombies, 0, "zombie workers");
    assert!(
        killed.is_empty(),
        "hostile input killed workers: {killed:?}"
    );

    // And it still serves: a valid launch is admitted and stops cleanly.
    let good = launch::body(&lk, "whatever", "after-corpus", "after-avatar", "agent");
    let (s, r) = sup.post_json("/launch", &good, &[("api-secret", SECRET)]);
    assert_eq!(s, 200, "a valid launch after the corpus: {r}");
    let id = r["task_id"].as_str().unwrap_or_default();
    let r = sup
        .http
        .post(sup.url(&format!("/tasks/{id}/stop")))
        .header("api-secret", SECRET)
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);

    assert!(
        failures.is_empty(),
        "{} of {} corpus cases were not answered as expected (listed above)",
        failures.len(),
        cases.len()
    );
}
