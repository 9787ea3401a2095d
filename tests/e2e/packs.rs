//! Model packs from a URL (`MODEL_PACK_URL` + `MODEL_PACK_SHA256`) with the real supervisor and worker
//! binaries and a real HTTP server on loopback (no WebRTC, so no namespace): download, verify, unpack, a
//! worker loading the result, reuse without the server, a sha256 mismatch, a cut and a stalled body, a
//! server without Range support, oversize archives, and the setting errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lipcast_e2e::packserver::{Behaviour, Cut, PackServer};
use lipcast_e2e::{Supervisor, paths};
use sha2::{Digest, Sha256};

/// The name the test copy of the built-in pack gets, so the log shows which pack a worker loaded.
const PACK_NAME: &str = "lipcast-url-test";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lipcast-packs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A .tar.gz of a copy of models/builtin (top folder `mypack/`, renamed in its manifest), and its sha256.
fn archive(dir: &Path) -> (Vec<u8>, String) {
    let src = paths::workspace().join("models/builtin");
    let pack = dir.join("mypack");
    std::fs::create_dir_all(&pack).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        std::fs::copy(e.path(), pack.join(e.file_name())).unwrap_or_else(|e| panic!("{e}"));
    }
    let manifest = std::fs::read_to_string(pack.join("manifest.toml")).unwrap_or_default();
    assert!(manifest.contains("name = \"lipcast-builtin\""));
    std::fs::write(
        pack.join("manifest.toml"),
        manifest.replace(
            "name = \"lipcast-builtin\"",
            &format!("name = \"{PACK_NAME}\""),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("pack.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(dir)
        .arg("mypack")
        .status()
        .unwrap_or_else(|e| panic!("running tar: {e}"));
    assert!(status.success(), "tar czf failed");
    let bytes = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
    let sha = hex(&bytes);
    (bytes, sha)
}

fn pack_env<'a>(url: &'a str, sha: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MODEL_PACK_URL", url),
        ("MODEL_PACK_SHA256", sha),
        ("AUTO_PREWARM", "false"),
    ]
}

fn wait_log(sup: &Supervisor, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(l) = sup.log().into_iter().find(|l| l.contains(needle)) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?} within {within:?}; log:\n{}",
            sup.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Names in DATA_DIR/packs/.
fn packs_listing(data: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data.join("packs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn pack_url_downloads_verifies_unpacks_and_is_reused() {
    let dir = tmp("good");
    let (body, sha) = archive(&dir);
    let server = PackServer::start(body.clone(), Behaviour::default());
    let url = server.url("/releases/pack.tar.gz");

    let t = Instant::now();
    let sup = Supervisor::start(&dir, &pack_env(&url, &sha));
    let health_s = t.elapsed().as_secs_f64();
    sup.wait_ready(Duration::from_secs(90));
    let first_ready = t.elapsed();
    // The worker loaded the downloaded copy, not the built-in pack.
    let line = wait_log(&sup, "model pack verified: ready", Duration::from_secs(5));
    assert!(line.contains(&format!("pack={PACK_NAME}")), "{line}");
    let root = sup.data_dir.join("packs").join(&sha).join("mypack");
    assert!(root.join("manifest.toml").is_file());
    assert!(root.join("face_landmark.onnx").is_file());
    assert!(
        sup.data_dir
            .join("packs")
            .join(&sha)
            .join(".lipcast-download.json")
            .is_file()
    );
    assert_eq!(
        packs_listing(&sup.data_dir),
        vec![sha.clone()],
        "no .part or .unpack left"
    );
    assert_eq!(server.requests(), vec![String::new()], "one download");
    let downloaded = wait_log(&sup, "model pack downloaded", Duration::from_secs(1));

    // Second start: the server is gone, the pack is reused.
    let data = sup.data_dir.clone();
    assert!(sup.terminate(Duration::from_secs(20)).success());
    drop(server);
    let t = Instant::now();
    let sup = Supervisor::start_in(&data, &pack_env(&url, &sha));
    sup.wait_ready(Duration::from_secs(90));
    let reuse_ready = t.elapsed();
    wait_log(
        &sup,
        "already downloaded: reusing it",
        Duration::from_secs(1),
    );
    assert!(
        !sup.log()
            .iter()
            .any(|l| l.contains("downloading the model pack"))
    );
    let line = wait_log(&sup, "model pack verified: ready", Duration::from_secs(5));
    assert!(line.contains(&format!("pack={PACK_NAME}")), "{line}");
    println!(
        "pack url: archive {} bytes; /health after {health_s:.2} s; first start ready after {:.2} s \
         ({downloaded}); restart (reuse, no server) ready after {:.2} s",
        body.len(),
        first_ready.as_secs_f64(),
        reuse_ready.as_secs_f64()
    );
}

#[test]
fn pack_url_sha256_mismatch_stays_not_ready() {
    let dir = tmp("mismatch");
    let (body, _) = archive(&dir);
    let wrong = hex(b"some other archive");
    let server = PackServer::start(body, Behaviour::default());
    let url = server.url("/pack.tgz");
    let sup = Supervisor::start(&dir, &pack_env(&url, &wrong));
    let line = wait_log(
        &sup,
        "does not match MODEL_PACK_SHA256",
        Duration::from_secs(30),
    );
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&wrong), "{line}");
    // Not ready, and it stays so: no retries, no worker.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (status, ready) = sup.get("/ready");
        assert_eq!(status, 503, "{ready}");
        assert_eq!(ready["status"], "not_ready");
        assert_eq!(ready["model_ready"], false);
        let detail = ready["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("does not match MODEL_PACK_SHA256"),
            "{ready}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        sup.worker_pids().is_empty(),
        "no worker starts without a pack"
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        packs_listing(&sup.data_dir),
        Vec::<String>::new(),
        "nothing half-done left"
    );
    // A launch is refused as not ready, with the reason.
    let lk = lipcast_e2e::launch::blackhole();
    let body = lipcast_e2e::launch::body(&lk, "whatever", "room-p", "av-p", "agent");
    let (status, r) = sup.post_json("/launch", &body, &[]);
    assert_eq!(status, 503, "{r}");
    assert_eq!(r["error"], "not_ready", "{r}");
    assert!(
        r["detail"]
            .as_str()
            .is_some_and(|d| d.contains("MODEL_PACK_SHA256")),
        "{r}"
    );
}

#[test]
fn pack_url_resumes_a_stalled_body_with_range() {
    let dir = tmp("stall");
    let (body, sha) = archive(&dir);
    let half = body.len() / 2;
    let server = PackServer::start(
        body,
        Behaviour {
            first: Some(Cut::Stall(half, Duration::from_secs(30))),
            ..Behaviour::default()
        },
    );
    let url = server.url("/pack.tar.gz");
    let mut env = pack_env(&url, &sha);
    env.push(("MODEL_PACK_STALL_SECONDS", "2"));
    let sup = Supervisor::start(&dir, &env);
    // While the body stalls: /health is fine, /ready is not ready and says what is going on.
    let (status, _) = sup.get("/health");
    assert_eq!(status, 200);
    let (status, ready) = sup.get("/ready");
    assert_eq!(status, 503);
    assert_eq!(ready["status"], "not_ready");
    let detail = ready["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("MODEL_PACK_URL"), "{ready}");
    sup.wait_ready(Duration::from_secs(90));
    wait_log(&sup, "model pack download resumed", Duration::from_secs(1));
    let requests = server.requests();
    assert_eq!(requests, vec![String::new(), format!("bytes={half}-")]);
    let line = wait_log(&sup, "model pack verified: ready", Duration::from_secs(5));
    assert!(line.contains(&format!("pack={PACK_NAME}")), "{line}");
}

#[test]
fn pack_url_logs_progress_at_a_bounded_rate() {
    let dir = tmp("progress");
    let (body, sha) = archive(&dir);
    // About 7 s of download: more than one 5 s log period.
    let rate = body.len() / 7;
    let server = PackServer::start(
        body,
        Behaviour {
            rate: Some(rate),
            ..Behaviour::default()
        },
    );
    let url = server.url("/pack.tar.gz");
    let sup = Supervisor::start(&dir, &pack_env(&url, &sha));
    // /ready shows the percentage while it downloads.
    let deadline = Instant::now() + Duration::from_secs(5);
    let detail = loop {
        let (status, ready) = sup.get("/ready");
        assert_eq!(status, 503, "{ready}");
        let d = ready["detail"].as_str().unwrap_or_default().to_owned();
        if d.contains("%)") {
            break d;
        }
        assert!(Instant::now() < deadline, "no progress in /ready: {ready}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        detail.starts_with("the model pack is downloading from MODEL_PACK_URL: "),
        "{detail}"
    );
    let t = Instant::now();
    sup.wait_ready(Duration::from_secs(90));
    let line = wait_log(&sup, "model pack download: ", Duration::from_secs(1));
    assert!(
        line.contains("MiB (") && line.contains("%) at ") && line.contains("MiB/s"),
        "{line}"
    );
    let lines = sup
        .log()
        .iter()
        .filter(|l| l.contains("model pack download: "))
        .count();
    let took = t.elapsed().as_secs_f64() + 1.0;
    assert!(
        (1..=(took / 5.0).ceil() as usize + 1).contains(&lines),
        "{lines} progress lines in about {took:.0} s"
    );
}

#[test]
fn pack_url_restarts_a_cut_download_when_the_server_has_no_range() {
    let dir = tmp("cut");
    let (body, sha) = archive(&dir);
    let server = PackServer::start(
        body.clone(),
        Behaviour {
            ranges: false,
            first: Some(Cut::Drop(body.len() / 3)),
            ..Behaviour::default()
        },
    );
    let url = server.url("/pack.tar.gz");
    let sup = Supervisor::start(&dir, &pack_env(&url, &sha));
    sup.wait_ready(Duration::from_secs(90));
    wait_log(&sup, "retrying", Duration::from_secs(1));
    wait_log(&sup, "does not resume", Duration::from_secs(1));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[1].starts_with("bytes="),
        "the retry asked to resume"
    );
    let line = wait_log(&sup, "model pack verified: ready", Duration::from_secs(5));
    assert!(line.contains(&format!("pack={PACK_NAME}")), "{line}");
}

#[test]
fn pack_url_oversize_is_refused() {
    let dir = tmp("oversize");
    let (body, sha) = archive(&dir);
    assert!(
        body.len() > 1024 * 1024,
        "the test pack is {} bytes",
        body.len()
    );
    for content_length in [true, false] {
        let server = PackServer::start(
            body.clone(),
            Behaviour {
                content_length,
                ..Behaviour::default()
            },
        );
        let url = server.url("/pack.tar.gz");
        let mut env = pack_env(&url, &sha);
        env.push(("MODEL_PACK_MAX_MB", "1"));
        let sup = Supervisor::start(&dir, &env);
        let line = wait_log(
            &sup,
            "larger than MODEL_PACK_MAX_MB",
            Duration::from_secs(30),
        );
        assert!(line.contains("ERROR"), "{line}");
        let (status, ready) = sup.get("/ready");
        assert_eq!(status, 503);
        assert!(
            ready["detail"]
                .as_str()
                .is_some_and(|d| d.contains("MODEL_PACK_MAX_MB")),
            "{ready}"
        );
        assert_eq!(server.requests().len(), 1, "no retry of an oversize pack");
        assert_eq!(packs_listing(&sup.data_dir), Vec::<String>::new());
        assert!(sup.worker_pids().is_empty());
    }
}

/// Runs the supervisor with `env` and expects it to exit non-zero at once; returns what it printed.
fn config_error(env: &[(&str, &str)]) -> String {
    let dir = tmp("config");
    let mut cmd = Command::new(paths::release_bin("lipcast-supervisor"));
    cmd.current_dir(paths::workspace())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DATA_DIR", dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the supervisor did not exit on a setting error: {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success(), "{env:?} exited 0");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn pack_url_setting_errors() {
    let sha = "0".repeat(64);
    let out = config_error(&[("MODEL_PACK_URL", "http://127.0.0.1:1/p.tgz")]);
    assert!(out.contains("MODEL_PACK_SHA256 is not"), "{out}");
    let out = config_error(&[("MODEL_PACK_SHA256", &sha)]);
    assert!(out.contains("MODEL_PACK_URL is not"), "{out}");
    let out = config_error(&[
        ("MODEL_PACK_URL", "http://127.0.0.1:1/p.tgz"),
        ("MODEL_PACK_SHA256", &sha),
        ("MODEL_PACK", "models/builtin"),
    ]);
    assert!(out.contains("both set"), "{out}");
    let out = config_error(&[
        ("MODEL_PACK_URL", "file:///etc/passwd"),
        ("MODEL_PACK_SHA256", &sha),
    ]);
    assert!(out.contains("http:// or https://"), "{out}");
    let out = config_error(&[
        ("MODEL_PACK_URL", "http://127.0.0.1:1/p.tgz"),
        ("MODEL_PACK_SHA256", "abc"),
    ]);
    assert!(out.contains("64 hex digits"), "{out}");
}
