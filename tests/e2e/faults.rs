//! Faults lipcast must survive with clear errors and no lost or corrupt state: the LiveKit connection dying
//! mid-session, the task database locked by another process or its disk full, and a launch storm.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lipcast_e2e::netns::{self, Proto};
use lipcast_e2e::{Agent, LiveKitServer, Supervisor, TestEnv, Viewer, in_namespace, launch, paths};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(300);

fn body(url: &str, room: &str, identity: &str, secret: &str) -> Value {
    launch::body(url, secret, room, identity, "agent")
}

#[test]
fn faults_livekit_connection_dies() {
    in_namespace("faults_livekit_connection_dies", LIMIT, connection_dies);
}

/// How long a silent path death may take to end in a resumed session or a failed task: the engine notices it
/// when its signalling pings go unanswered (13 s after the cut, measured), then lipcast gives a resumption 12 s
/// (`RECONNECT_GIVE_UP` in `worker/src/session/mod.rs`) before it fails the task; plus a margin for a loaded machine.
const SILENT_DEATH_LIMIT: Duration = Duration::from_secs(40);

/// The avatar's network path to livekit-server dies without a goodbye (every packet of the worker's sockets
/// dropped in the namespace): within [`SILENT_DEATH_LIMIT`] the worker has either resumed (a viewer decodes its
/// frames again, after a gap) or ended the task as failed with a reason.
fn connection_dies(env: &TestEnv) {
    let lk = LiveKitServer::start(env);
    let sup = Supervisor::start(&env.out_dir, &[("WARM_WORKERS", "1")]);
    sup.wait_ready(Duration::from_secs(60));
    let mut agent = Agent::start(
        &lk.url(),
        &env.mint("agent", "r", "agent", &[]),
        "avatar",
        false,
    );
    agent.expect("connected", Duration::from_secs(20));
    let viewer = Viewer::start(env, &lk.url(), "r", "viewer");
    let (s, r) = sup.post_json(
        "/launch",
        &body(&lk.url(), "r", "avatar", lipcast_e2e::LK_SECRET),
        &[],
    );
    assert_eq!(s, 200, "{r}");
    let task = r["task_id"].as_str().unwrap_or_default().to_owned();
    sup.wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");
    std::thread::sleep(Duration::from_secs(2));
    let ports = netns::socket_ports(sup.worker_of(&task));
    println!("cutting the worker's sockets: {ports:?}");
    assert!(
        ports.iter().any(|p| p.0 == Proto::Udp) && ports.iter().any(|p| p.0 == Proto::Tcp),
        "the worker's signalling (TCP) and media (UDP) sockets: {ports:?}"
    );
    let t0 = viewer.report()["t0_unix"].as_f64().unwrap_or(0.0);
    let t = Instant::now();
    let cut_at = unix_now() - t0;
    netns::cut_ports(&ports);
    // Either outcome is fine, a stuck "running" is not.
    let deadline = Instant::now() + SILENT_DEATH_LIMIT;
    let outcome = loop {
        let (_, now) = sup.get(&format!("/tasks/{task}"));
        if now["status"] == "failed" {
            break format!(
                "failed after {} ms: {}",
                t.elapsed().as_millis(),
                now["error"]
            );
        }
        // Resumed: frames stopped reaching the viewer, then came back (25 of them).
        let frames = viewer_frames(&viewer.report());
        let after = frames.iter().filter(|at| **at > cut_at).count();
        // A gap of over a second that ends after the cut (the frames in flight may arrive after it), then 25.
        let gap_then = frames
            .windows(2)
            .position(|w| w[1] - w[0] > 1.0 && w[1] > cut_at)
            .map(|i| frames.len() - i - 1);
        if gap_then.is_some_and(|n| n >= 25) && now["status"] == "running" {
            break format!("resumed after {} ms", t.elapsed().as_millis());
        }
        assert!(
            Instant::now() < deadline,
            "task still {} {SILENT_DEATH_LIMIT:?} after the connection died, {} frames decoded since: {now}",
            now["status"],
            after
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("MEASURED connection dropped -> {outcome}");
    let (_, fin) = sup.get(&format!("/tasks/{task}"));
    if fin["status"] == "failed" {
        assert!(
            fin["error"].as_str().is_some_and(|e| !e.is_empty()),
            "a failure needs a reason: {fin}"
        );
    }
    let _ = sup.post(&format!("/tasks/{task}/stop"));
}

/// Arrival times (the viewer's clock) of the avatar's frames the viewer decoded so far.
fn viewer_frames(report: &Value) -> Vec<f64> {
    report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["identity"] == "avatar"))
        .map(|p| {
            // A resumed or rejoined avatar may publish a new track: the viewer records each apart.
            let tracks = p["video"].as_array().map_or(0, Vec::len);
            let mut at: Vec<f64> = (0..tracks)
                .flat_map(|i| lipcast_e2e::analysis::video_frames(p, i))
                .map(|f| f.at)
                .collect();
            at.sort_by(f64::total_cmp);
            at
        })
        .unwrap_or_default()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs a Python snippet with the test venv (sqlite3 from the standard library).
fn python(code: &str) -> std::process::Child {
    let mut child = Command::new(paths::python())
        .arg("-c")
        .arg(code)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.flush();
    }
    child
}

fn integrity(db: &std::path::Path) -> String {
    let out = Command::new(paths::python())
        .arg("-c")
        .arg(format!(
            "import sqlite3; print(sqlite3.connect({:?}).execute('PRAGMA integrity_check').fetchone()[0])",
            db.display().to_string()
        ))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn faults_database_locked_and_disk_full() {
    // A namespace of its own: the test mounts a tiny tmpfs, private to it.
    in_namespace(
        "faults_database_locked_and_disk_full",
        LIMIT,
        database_faults,
    );
}

fn database_faults(env: &TestEnv) {
    let lk = launch::blackhole();
    // The data dir on a 4 MiB tmpfs, so the disk can be filled.
    let data = env.out_dir.join("tmpfs");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap_or_else(|e| panic!("mount: {e}"));
    assert!(mounted.success(), "mounting a tmpfs needs root");
    let sup = Supervisor::start_in(
        &data,
        &[("LIVEKIT_CONNECT_TIMEOUT", "60"), ("AUTO_PREWARM", "false")],
    );
    sup.wait_ready(Duration::from_secs(60));
    let db = data.join("lipcast.db");
    let (s, r) = sup.post_json("/launch", &body(&lk, "ok", "a", "x"), &[]);
    assert_eq!(s, 200, "{r}");

    // Another process holds the database's write lock for 8 s: launches fail clearly, reads go on.
    let mut locker = python(&format!(
        "import sqlite3, time, sys\nc = sqlite3.connect({:?}, isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(8)\nc.execute('ROLLBACK')\n",
        db.display().to_string()
    ));
    if let Some(out) = locker.stdout.as_mut() {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        assert!(
            line.contains("locked"),
            "the locker did not get the lock: {line}"
        );
    }
    let t = Instant::now();
    let (s, r) = sup.post_json("/launch", &body(&lk, "locked", "b", "x"), &[]);
    println!(
        "MEASURED launch with the database locked: {s} after {} ms: {r}",
        t.elapsed().as_millis()
    );
    assert_eq!(s, 503, "{r}");
    assert!(
        r["detail"]
            .as_str()
            .is_some_and(|d| d.contains("task store")),
        "{r}"
    );
    assert_eq!(sup.get("/health").0, 200, "the server stays up");
    let _ = locker.wait();
    let (s, r) = sup.post_json("/launch", &body(&lk, "unlocked", "c", "x"), &[]);
    assert_eq!(s, 200, "after the lock: {r}");

    // The disk fills up: launches fail clearly; after space is freed, everything works and nothing is corrupt.
    let filler = data.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap_or_else(|e| panic!("{e}"));
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let mut refused = None;
    for i in 0..20 {
        let (s, r) = sup.post_json("/launch", &body(&lk, &format!("full{i}"), "d", "x"), &[]);
        if s != 200 {
            refused = Some((s, r));
            break;
        }
    }
    let (s, r) = refused.unwrap_or_else(|| panic!("launches kept succeeding on a full disk"));
    println!("MEASURED launch on a full disk: {s}: {r}");
    assert!(s == 503 || s == 507, "{s} {r}");
    assert!(r["error"].is_string() && r["detail"].is_string(), "{r}");
    assert_eq!(sup.get("/health").0, 200);
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    let (s, r) = sup.post_json("/launch", &body(&lk, "freed", "e", "x"), &[]);
    assert_eq!(s, 200, "after freeing space: {r}");
    let (_, list) = sup.get("/tasks");
    println!(
        "tasks after the faults: {}",
        list["tasks"].as_array().map_or(0, Vec::len)
    );
    let st = sup.terminate(Duration::from_secs(20));
    assert!(st.success());
    assert_eq!(integrity(&db), "ok", "the task database is corrupt");
    let _ = Command::new("umount").arg(&data).status();
}

#[test]
fn faults_launch_storm() {
    let lk = launch::blackhole();
    let dir = std::env::temp_dir().join(format!("lipcast-storm-{}", std::process::id()));
    let sup = Supervisor::start(
        &dir,
        &[("MAX_SESSIONS", "4"), ("LIVEKIT_CONNECT_TIMEOUT", "60")],
    );
    sup.wait_ready(Duration::from_secs(60));
    let url = sup.url("/launch");
    let t = Instant::now();
    let handles: Vec<_> = (0..500)
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
                    .json(&body(&lk, &format!("s{i}"), &format!("a{i}"), "x"))
                    .send()
                    .unwrap_or_else(|e| panic!("{e}"));
                (r.status().as_u16(), t.elapsed())
            })
        })
        .collect();
    let results: Vec<(u16, Duration)> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| panic!("thread")))
        .collect();
    let admitted = results.iter().filter(|r| r.0 == 200).count();
    let refused = results.iter().filter(|r| r.0 == 503).count();
    let mut lat: Vec<u128> = results.iter().map(|r| r.1.as_millis()).collect();
    lat.sort_unstable();
    println!(
        "MEASURED storm of 500 launches, MAX_SESSIONS=4, in {} ms: admitted {admitted}, 503 {refused}, latency p50 {} ms p99 {} ms max {} ms",
        t.elapsed().as_millis(),
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1]
    );
    assert_eq!(admitted, 4);
    assert_eq!(refused, 496);
    assert_eq!(sup.get("/health").1["active_sessions"], 4);
}
