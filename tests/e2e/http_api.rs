//! The bitHuman-compatible HTTP API of the real supervisor binary (with real workers preparing portraits):
//! every route, both body formats, auth on and off, atomic admission, idempotency, pruning, restarts, and the
//! exact request shapes livekit-plugins-bithuman sends.
//!
//! No WebRTC here: launches point at a LiveKit URL that accepts TCP and never answers, so their sessions stay
//! `pending` (joining) for as long as a test needs, or fail after LIVEKIT_CONNECT_TIMEOUT.

use std::io::Read;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lipcast_e2e::{Supervisor, launch, paths, token};
use serde_json::{Value, json};

const SECRET: &str = "s3cret-for-tests";

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lipcast-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

fn avatar_token(room: &str, identity: &str) -> String {
    token::mint(
        "whatever",
        identity,
        room,
        "agent",
        &[("lk.publish_on_behalf", "agent")],
    )
}

fn json_launch(url: &str, room: &str, identity: &str) -> Value {
    launch::body(url, "whatever", room, identity, "agent")
}

fn start(name: &str, env: &[(&str, &str)]) -> Supervisor {
    let mut all = vec![("LIVEKIT_CONNECT_TIMEOUT", "60")];
    all.extend_from_slice(env);
    let s = Supervisor::start(&tmp(name), &all);
    s.wait_ready(Duration::from_secs(60));
    s
}

fn is_error(body: &Value, code: &str) -> bool {
    body["error"] == code && body["detail"].as_str().is_some_and(|d| !d.is_empty())
}

#[test]
fn http_routes_and_errors() {
    let lk = launch::blackhole();
    let sup = start("routes", &[("MAX_SESSIONS", "2")]);
    let (s, health) = sup.get("/health");
    assert_eq!(s, 200);
    assert_eq!(
        health,
        json!({"status": "healthy", "active_sessions": 0, "max_sessions": 2})
    );
    let (s, ready) = sup.get("/ready");
    assert_eq!(s, 200);
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["model_ready"], true);
    assert_eq!(ready["available_sessions"], 2);

    // JSON launch (what the plugin sends by default).
    let (s, r) = sup.post_json(
        "/launch",
        &json_launch(&lk, "room-a", "av-a"),
        &[("api-secret", "ignored")],
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "pending");
    assert_eq!(r["room_name"], "room-a");
    let id = r["task_id"].as_str().unwrap_or_default().to_owned();
    assert!(
        id.len() == 12
            && id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id}"
    );

    // Idempotent: the same room and avatar identity return the same task.
    let (s, again) = sup.post_json("/launch", &json_launch(&lk, "room-a", "av-a"), &[]);
    assert_eq!(
        (s, again["task_id"].as_str()),
        (200, Some(id.as_str())),
        "{again}"
    );

    // Multipart with a file, and with no portrait at all (the shipped default).
    let form = reqwest::blocking::multipart::Form::new()
        .text("livekit_url", lk.clone())
        .text("livekit_token", avatar_token("room-b", "av-b"))
        .text("room_name", "room-b")
        .text("prompt", "You are friendly.")
        .text("model", "expression");
    let r = sup
        .http
        .post(sup.url("/launch"))
        .multipart(form)
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    let b_id = r
        .json::<Value>()
        .map(|v| v["task_id"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();

    // Full: 503 at_capacity.
    let (s, full) = sup.post_json("/launch", &json_launch(&lk, "room-c", "av-c"), &[]);
    assert_eq!(s, 503);
    assert!(is_error(&full, "at_capacity"), "{full}");
    assert_eq!(full["detail"], "2 of 2 sessions in use");
    let (s, ready) = sup.get("/ready");
    assert_eq!(
        (s, ready["status"].as_str()),
        (503, Some("at_capacity")),
        "{ready}"
    );

    // Tasks.
    let (s, list) = sup.get("/tasks");
    assert_eq!(s, 200);
    let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 2);
    for t in &tasks {
        for key in [
            "task_id",
            "room_name",
            "status",
            "created_at",
            "completed_at",
            "error",
        ] {
            assert!(t.get(key).is_some(), "task lacks {key}: {t}");
        }
        let text = t.to_string();
        assert!(
            !text.contains("livekit_token") && !text.contains("eyJ"),
            "a token leaked into /tasks: {t}"
        );
        let created = t["created_at"].as_str().unwrap_or_default();
        assert!(
            created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T",
            "{created}"
        );
    }
    let (s, one) = sup.get(&format!("/tasks/{id}"));
    assert_eq!((s, one["status"].as_str()), (200, Some("pending")), "{one}");
    let (s, stopped) = sup.post(&format!("/tasks/{b_id}/stop"));
    assert_eq!((s, stopped["status"].as_str()), (200, Some("cancelled")));
    assert!(stopped["completed_at"].is_string());
    let (s, missing) = sup.get("/tasks/000000000000");
    assert_eq!(s, 404);
    assert!(is_error(&missing, "not_found"), "{missing}");
    let (s, missing) = sup.post("/tasks/nope/stop");
    assert_eq!(s, 404, "{missing}");

    // Benchmark and test frame run on a real worker.
    let (s, bench) = sup.post("/benchmark?iterations=20");
    assert_eq!(s, 200, "{bench}");
    assert_eq!(bench["iterations"], 20);
    assert_eq!(bench["device"], "cpu");
    assert_eq!(bench["gpu"], Value::Null);
    assert_eq!(bench["vram_gb"], 0.0);
    assert!(
        bench["avg_ms"].as_f64().is_some_and(|v| v > 0.0)
            && bench["fps"].as_f64().is_some_and(|v| v > 25.0),
        "{bench}"
    );
    println!("MEASURED /benchmark {bench}");
    let (s, bad) = sup.post("/benchmark?iterations=abc");
    assert_eq!(s, 400, "{bad}");
    let r = sup
        .http
        .get(sup.url("/test-frame"))
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/jpeg")
    );
    let jpeg = r.bytes().unwrap_or_default();
    assert!(
        jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.len() > 10_000,
        "not a JPEG ({} bytes)",
        jpeg.len()
    );

    // Errors: JSON with the right status.
    let cases: Vec<(&str, reqwest::blocking::RequestBuilder, u16, &str)> = vec![
        ("not JSON", sup.http.post(sup.url("/launch")).header("content-type", "application/json").body("{"), 400, "invalid_json"),
        ("wrong type", sup.http.post(sup.url("/launch")).header("content-type", "text/plain").body("x"), 415, "unsupported_media_type"),
        ("missing fields", sup.http.post(sup.url("/launch")).json(&json!({"room_name": "r"})), 400, "invalid_request"),
        ("bad url", sup.http.post(sup.url("/launch")).json(&json!({"livekit_url": "file:///etc/passwd", "livekit_token": "a.b.c", "room_name": "r"})), 400, "invalid_request"),
        ("bad token", sup.http.post(sup.url("/launch")).json(&json!({"livekit_url": lk, "livekit_token": "not-a-jwt", "room_name": "r"})), 400, "invalid_token"),
        ("no route", sup.http.get(sup.url("/nope")), 404, "not_found"),
        ("method", sup.http.get(sup.url("/launch")), 405, "method_not_allowed"),
        // Its own connection: the server answers before reading the body and closes it.
        (
            "too large",
            reqwest::blocking::Client::new()
                .post(sup.url("/launch"))
                .header("content-type", "application/json")
                .body(vec![b' '; 11 * 1024 * 1024]),
            413,
            "too_large",
        ),
    ];
    for (what, req, status, code) in cases {
        let r = req.send().unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = r.status().as_u16();
        let body: Value = r.json().unwrap_or(Value::Null);
        assert_eq!(got, status, "{what}: {body}");
        assert!(is_error(&body, code), "{what}: {body}");
    }
    // Portraits the worker refuses: answered before the response, and no task is left behind.
    sup.post(&format!("/tasks/{id}/stop"));
    let blank = {
        let img = image_png(256, 256);
        STANDARD.encode(img)
    };
    let mut body = json_launch(&lk, "room-d", "av-d");
    body["image"] = Value::from(blank);
    let (s, r) = sup.post_json("/launch", &body, &[]);
    assert_eq!(s, 400, "{r}");
    assert!(is_error(&r, "no_face"), "{r}");
    assert_eq!(r["detail"], "No face detected");
    body["image"] = Value::from(STANDARD.encode(two_faces_png()));
    let (s, r) = sup.post_json("/launch", &body, &[]);
    assert_eq!(s, 400, "{r}");
    assert!(
        r["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2 faces of similar size")),
        "{r}"
    );
    body["image"] = Value::from(STANDARD.encode(b"\x89PNG\r\n\x1a\nnot really"));
    let (s, r) = sup.post_json("/launch", &body, &[]);
    assert_eq!(s, 400, "{r}");
    body["image"] = Value::Null;
    body["agent_id"] = Value::from("nobody");
    let (s, r) = sup.post_json("/launch", &body, &[]);
    assert_eq!(s, 400, "{r}");
    assert!(is_error(&r, "unknown_avatar"), "{r}");
    let (_, list) = sup.get("/tasks");
    assert_eq!(
        list["tasks"].as_array().map_or(0, Vec::len),
        2,
        "refused launches must leave no task: {list}"
    );
}

/// A PNG of flat colour (no face).
/// Two copies of the default portrait's head side by side: who should speak?
fn two_faces_png() -> Vec<u8> {
    let img = image::load_from_memory(&paths::default_portrait())
        .unwrap_or_else(|e| panic!("decoding the default portrait: {e}"))
        .to_rgb8();
    // The head and a little around it (where the face detector puts it on this portrait).
    let head = image::imageops::crop_imm(&img, 141, 44, 170, 170).to_image();
    let mut pair = image::RgbImage::from_pixel(340, 170, image::Rgb([200, 200, 200]));
    image::imageops::overlay(&mut pair, &head, 0, 0);
    image::imageops::overlay(&mut pair, &head, 170, 0);
    let mut out = std::io::Cursor::new(Vec::new());
    pair.write_to(&mut out, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("encoding a PNG: {e}"));
    out.into_inner()
}

fn image_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([180, 160, 140]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("encoding a PNG: {e}"));
    out.into_inner()
}

#[test]
fn http_auth() {
    let lk = launch::blackhole();
    let sup = start("auth", &[("API_SECRET", SECRET)]);
    assert!(
        !sup.log()
            .iter()
            .any(|l| l.contains("API_SECRET is not set")),
        "no warning when a secret is set"
    );
    // Probes stay open; everything else needs the secret.
    assert_eq!(sup.get("/health").0, 200);
    assert_eq!(sup.get("/ready").0, 200);
    assert_eq!(sup.get("/metrics").0, 200);
    for (path, post) in [
        ("/tasks", false),
        ("/tasks/abc", false),
        ("/tasks/abc/stop", true),
        ("/benchmark", true),
        ("/test-frame", false),
    ] {
        let req = if post {
            sup.http.post(sup.url(path))
        } else {
            sup.http.get(sup.url(path))
        };
        let r = req
            .try_clone()
            .and_then(|r| r.send().ok())
            .unwrap_or_else(|| panic!("{path}"));
        assert_eq!(r.status().as_u16(), 401, "{path} without the secret");
        let r = req
            .header("api-secret", "wrong")
            .send()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong secret");
    }
    assert_eq!(
        sup.http
            .get(sup.url("/tasks"))
            .header("api-secret", SECRET)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        200
    );
    assert_eq!(
        sup.http
            .get(sup.url("/tasks"))
            .bearer_auth(SECRET)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        200
    );
    // /launch: the JSON shape of the plugin (api-secret header) ...
    let (s, r) = sup.post_json("/launch", &json_launch(&lk, "r1", "a1"), &[]);
    assert_eq!(s, 401, "{r}");
    assert!(is_error(&r, "unauthorized"));
    let (s, r) = sup.post_json(
        "/launch",
        &json_launch(&lk, "r1", "a1"),
        &[("api-secret", SECRET)],
    );
    assert_eq!(s, 200, "{r}");
    // ... the multipart shape (Authorization: Bearer, avatar_image named avatar.jpg) ...
    let part = reqwest::blocking::multipart::Part::bytes(paths::default_portrait())
        .file_name("avatar.jpg")
        .mime_str("image/jpeg")
        .unwrap_or_else(|e| panic!("{e}"));
    let form = reqwest::blocking::multipart::Form::new()
        .text("livekit_url", lk.clone())
        .text("livekit_token", avatar_token("r2", "a2"))
        .text("room_name", "r2")
        .text("model", "expression")
        .part("avatar_image", part);
    let r = sup
        .http
        .post(sup.url("/launch?async=true"))
        .bearer_auth(SECRET)
        .multipart(form)
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    // ... and the form field.
    let form = reqwest::blocking::multipart::Form::new()
        .text("livekit_url", lk.clone())
        .text("livekit_token", avatar_token("r3", "a3"))
        .text("room_name", "r3")
        .text("api_secret", SECRET);
    let r = sup
        .http
        .post(sup.url("/launch"))
        .multipart(form)
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    let form = reqwest::blocking::multipart::Form::new()
        .text("livekit_url", lk)
        .text("livekit_token", avatar_token("r4", "a4"))
        .text("room_name", "r4")
        .text("api_secret", "wrong");
    let r = sup
        .http
        .post(sup.url("/launch"))
        .multipart(form)
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    // The secret and tokens appear nowhere: logs, database, /tasks, /metrics.
    let tokens = [avatar_token("r1", "a1"), avatar_token("r2", "a2")];
    let (_, tasks) = sup.get("/tasks");
    let _ = tasks;
    let listed = sup
        .http
        .get(sup.url("/tasks"))
        .header("api-secret", SECRET)
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    let metrics = sup.metrics_text();
    let log = sup.log().join("\n");
    let mut db = Vec::new();
    for f in ["lipcast.db", "lipcast.db-wal"] {
        if let Ok(mut file) = std::fs::File::open(sup.data_dir.join(f)) {
            let _ = file.read_to_end(&mut db);
        }
    }
    let db = String::from_utf8_lossy(&db);
    for (name, text) in [
        ("/tasks", listed.as_str()),
        ("/metrics", metrics.as_str()),
        ("log", log.as_str()),
        ("database", &*db),
    ] {
        assert!(
            !text.contains(SECRET),
            "the API secret leaked into the {name}"
        );
        for t in &tokens {
            let sig = t.rsplit('.').next().unwrap_or(t);
            assert!(
                !text.contains(sig),
                "a LiveKit token leaked into the {name}"
            );
        }
    }
}

#[test]
fn http_metrics_auth_setting() {
    let sup = start(
        "metrics-auth",
        &[
            ("API_SECRET", SECRET),
            ("METRICS_REQUIRE_AUTH", "true"),
            ("AUTO_PREWARM", "false"),
        ],
    );
    assert_eq!(sup.get("/metrics").0, 401);
    let r = sup
        .http
        .get(sup.url("/metrics"))
        .bearer_auth(SECRET)
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn http_admission_is_atomic_under_a_storm() {
    let lk = launch::blackhole();
    let sup = start("storm", &[("MAX_SESSIONS", "3"), ("WARM_WORKERS", "1")]);
    let url = sup.url("/launch");
    let t = Instant::now();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (url, lk) = (url.clone(), lk.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
                let t = Instant::now();
                let r = client
                    .post(url)
                    .json(&json_launch(&lk, &format!("storm-{i}"), &format!("av-{i}")))
                    .send()
                    .unwrap_or_else(|e| panic!("{e}"));
                let status = r.status().as_u16();
                let body: Value = r.json().unwrap_or(Value::Null);
                (status, body, t.elapsed())
            })
        })
        .collect();
    let results: Vec<(u16, Value, Duration)> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| panic!("thread")))
        .collect();
    let admitted = results.iter().filter(|r| r.0 == 200).count();
    let refused = results
        .iter()
        .filter(|r| r.0 == 503 && is_error(&r.1, "at_capacity"))
        .count();
    let mut lat: Vec<u128> = results.iter().map(|r| r.2.as_millis()).collect();
    lat.sort_unstable();
    println!(
        "MEASURED storm of 50 launches with MAX_SESSIONS=3 in {} ms: admitted {admitted}, at_capacity {refused}, latency p50 {} ms p99 {} ms",
        t.elapsed().as_millis(),
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    assert_eq!(admitted, 3, "{results:?}");
    assert_eq!(refused, 47);
    let (_, health) = sup.get("/health");
    assert_eq!(health["active_sessions"], 3);
}

#[test]
fn http_pruning_and_restart() {
    let lk = launch::blackhole();
    let dir = tmp("prune");
    let env = [
        ("LIVEKIT_CONNECT_TIMEOUT", "60"),
        ("TASK_RETENTION_SECONDS", "3"),
        ("TASK_PRUNE_INTERVAL_SECONDS", "1"),
        ("MAX_TASK_HISTORY", "3"),
        ("MAX_SESSIONS", "2"),
    ];
    let sup = Supervisor::start(&dir, &env);
    sup.wait_ready(Duration::from_secs(60));
    // One session stays active all along: pruning never evicts it.
    let (_, active) = sup.post_json("/launch", &json_launch(&lk, "keep", "keep"), &[]);
    let active_id = active["task_id"].as_str().unwrap_or_default().to_owned();
    for i in 0..5 {
        let (s, r) = sup.post_json("/launch", &json_launch(&lk, &format!("p{i}"), "av"), &[]);
        assert_eq!(s, 200, "{r}");
        sup.post(&format!(
            "/tasks/{}/stop",
            r["task_id"].as_str().unwrap_or_default()
        ));
    }
    // By count: at most 3 terminal tasks (+ the active one).
    let deadline = Instant::now() + Duration::from_secs(5);
    let count = |sup: &Supervisor| sup.get("/tasks").1["tasks"].as_array().map_or(0, Vec::len);
    while count(&sup) > 4 {
        assert!(
            Instant::now() < deadline,
            "not pruned by count: {}",
            count(&sup)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&sup), 4);

    let ids_of = |v: &Value| -> Vec<String> {
        v["tasks"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["task_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = ids_of(&sup.get("/tasks").1);
    assert!(before.contains(&active_id), "the active task was evicted");

    // A restart keeps the history. The shutdown ended the active task (its worker is gone), which makes it the
    // oldest terminal one: past MAX_TASK_HISTORY it goes, the three others stay.
    let data_dir = sup.data_dir.clone();
    let st = sup.terminate(Duration::from_secs(20));
    assert!(st.success());
    let sup = Supervisor::start_in(&data_dir, &env);
    let after = ids_of(&sup.get("/tasks").1);
    let kept: Vec<&String> = before.iter().filter(|id| **id != active_id).collect();
    assert!(
        kept.iter().all(|id| after.contains(id)),
        "history lost over a restart: {before:?} -> {after:?}"
    );
    assert_eq!(after.len(), 3, "{after:?}");
    // By age: all terminal tasks go after TASK_RETENTION_SECONDS.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&sup) > 0 {
        assert!(
            Instant::now() < deadline,
            "not pruned by age: {}",
            count(&sup)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn http_blocking_launch_and_named_avatars() {
    let lk = launch::blackhole();
    let dir = tmp("blocking");
    let sup = Supervisor::start(&dir, &[("LIVEKIT_CONNECT_TIMEOUT", "2")]);
    sup.wait_ready(Duration::from_secs(60));
    // async_mode=false waits for the end and returns the final record (here: the join timed out).
    let mut body = json_launch(&lk, "block", "av");
    body["async_mode"] = Value::Bool(false);
    let t = Instant::now();
    let (s, r) = sup.post_json("/launch", &body, &[]);
    println!(
        "blocking launch returned after {} ms: {r}",
        t.elapsed().as_millis()
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out") || e.contains("unreachable")),
        "{r}"
    );
    // ?async=false on the URL is honoured too.
    let r = sup
        .http
        .post(sup.url("/launch?async=false"))
        .json(&json_launch(&lk, "block2", "av"))
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(v["status"], "failed", "{v}");

    // avatar_id names DATA_DIR/avatars/<id>.jpg.
    let avatars = sup.data_dir.join("avatars");
    std::fs::create_dir_all(&avatars).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(avatars.join("astro.jpg"), paths::default_portrait())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = json_launch(&lk, "named", "av");
    body["image"] = Value::Null;
    body["agent_id"] = Value::from("astro");
    let (s, r) = sup.post_json("/launch", &body, &[]);
    assert_eq!(s, 200, "{r}");
    let (_, t) = sup.get(&format!(
        "/tasks/{}",
        r["task_id"].as_str().unwrap_or_default()
    ));
    assert_eq!(t["avatar_id"], "astro");
}

/// The shipped portrait re-encoded as PNG: the same face in other bytes (a different launch).
fn default_portrait_as_png() -> Vec<u8> {
    let img = image::load_from_memory(&paths::default_portrait())
        .unwrap_or_else(|e| panic!("decoding the default portrait: {e}"));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("encoding a PNG: {e}"));
    out.into_inner()
}

#[test]
fn http_repeated_launches_validate_first() {
    let lk = launch::blackhole();
    let sup = start("repeat", &[("MAX_SESSIONS", "2")]);
    let with_image = |image: &[u8]| {
        let mut body = json_launch(&lk, "room-r", "av-r");
        body["image"] = STANDARD.encode(image).into();
        body
    };
    let id = sup.launch(&json_launch(&lk, "room-r", "av-r"));

    // A replay (the plugin retrying: same room, identity and portrait) gets the live session.
    let (s, again) = sup.post_json("/launch", &json_launch(&lk, "room-r", "av-r"), &[]);
    assert_eq!(
        (s, again["task_id"].as_str()),
        (200, Some(id.as_str())),
        "{again}"
    );

    // Bad input gets its 4xx whatever state the room is in.
    for (what, image, codes) in [
        (
            "a 1x1 PNG",
            image_png(1, 1),
            &["no_face", "invalid_image"][..],
        ),
        (
            "a picture without a face",
            image_png(320, 320),
            &["no_face"][..],
        ),
        (
            "a truncated PNG",
            image_png(320, 320)[..200].to_vec(),
            &["invalid_image"][..],
        ),
    ] {
        let (s, r) = sup.post_json("/launch", &with_image(&image), &[]);
        assert!(
            s == 400 && codes.iter().any(|c| is_error(&r, c)),
            "{what} for a busy room: {s} {r}"
        );
    }

    // A different, valid launch for the room: 409 room_busy naming the live session.
    let (s, busy) = sup.post_json("/launch", &with_image(&default_portrait_as_png()), &[]);
    assert_eq!(s, 409, "{busy}");
    assert!(is_error(&busy, "room_busy"), "{busy}");
    assert_eq!(busy["task_id"], id.as_str(), "{busy}");

    // Nothing was lost: the live session is the only one, untouched.
    let (_, task) = sup.get(&format!("/tasks/{id}"));
    assert_eq!(task["status"], "pending", "{task}");
    let (_, list) = sup.get("/tasks");
    assert_eq!(list["tasks"].as_array().map(Vec::len), Some(1), "{list}");

    // Once it is stopped, the different launch starts a new session.
    let (s, _) = sup.post(&format!("/tasks/{id}/stop"));
    assert_eq!(s, 200);
    let (s, fresh) = sup.post_json("/launch", &with_image(&default_portrait_as_png()), &[]);
    assert_eq!(s, 200, "{fresh}");
    assert_ne!(fresh["task_id"].as_str(), Some(id.as_str()), "{fresh}");
}
