//! Worker processes under supervision, with real processes: a session's task ends whatever happens to its
//! worker (stop, crash, hang, the supervisor's own crash), every worker is reaped, slots come back, and the
//! warm pool makes launches fast. Sessions join the real `livekit-server`, so each test runs in its own namespace.

use std::time::{Duration, Instant};

use lipcast_e2e::supervisor::{ProcStat, children_of, exists, proc_stat};
use lipcast_e2e::{Agent, LiveKitServer, Supervisor, TestEnv, in_namespace, launch};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const LIMIT: Duration = Duration::from_secs(400);

fn launched(
    _env: &TestEnv,
    sup: &Supervisor,
    room: &LiveKitServer,
    room_name: &str,
    avatar: &str,
) -> String {
    sup.launch(&launch::body(
        &room.url(),
        lipcast_e2e::LK_SECRET,
        room_name,
        avatar,
        "agent",
    ))
}

fn zombies_of(pid: u32) -> Vec<u32> {
    children_of(pid)
        .into_iter()
        .filter(|c| proc_stat(*c).is_some_and(|s: ProcStat| s.state == 'Z'))
        .collect()
}

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)), sig)
        .unwrap_or_else(|e| panic!("kill {pid}: {e}"));
}

fn wait_gone(pid: u32, within: Duration) -> Duration {
    let t = Instant::now();
    while exists(pid) {
        assert!(
            t.elapsed() < within,
            "process {pid} still exists after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

#[test]
fn workers_stop_crash_and_hang() {
    in_namespace("workers_stop_crash_and_hang", LIMIT, stop_crash_and_hang);
}

/// launch -> running -> stop -> cancelled; kill -9 mid-session -> failed with the signal; SIGSTOP -> killed and
/// reaped; each time the slot comes back and no zombie is left.
fn stop_crash_and_hang(env: &TestEnv) {
    let room = LiveKitServer::start(env);
    let sup = Supervisor::start(
        &env.out_dir,
        &[("MAX_SESSIONS", "1"), ("WARM_WORKERS", "1")],
    );
    sup.wait_ready(Duration::from_secs(60));
    let mut agent = Agent::start(
        &room.url(),
        &env.mint("agent", "r", "agent", &[]),
        "avatar",
        false,
    );
    agent.expect("connected", Duration::from_secs(20));

    // Stop.
    let task = launched(env, &sup, &room, "r", "avatar");
    sup.wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");
    let pid = sup.worker_of(&task);
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or("")
            .split_whitespace()
            .nth(1)
            .unwrap_or("?")
            .to_owned()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    println!(
        "MEASURED worker in a session: VmPeak {} kB, VmRSS {} kB, threads {}, open fds {fds}",
        field("VmPeak:"),
        field("VmRSS:"),
        field("Threads:")
    );
    // Least privilege: its own process group, an address-space limit, nothing of the supervisor's open.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let pgid: u32 = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(pgid, pid, "the worker leads its own process group");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let as_limit = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .unwrap_or("")
        .to_owned();
    assert!(
        as_limit.contains("4294967296"),
        "RLIMIT_AS of a CPU worker: {as_limit}"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&environ).contains("API_SECRET"),
        "the worker inherited the API secret"
    );
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(fd.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        assert!(
            !target.contains("lipcast.db"),
            "the worker inherited the task database: {target}"
        );
    }
    least_privilege(sup.pid(), pid, &sup.data_dir);
    let t = Instant::now();
    let (status, stopped) = sup.post(&format!("/tasks/{task}/stop"));
    assert_eq!(
        (status, stopped["status"].as_str()),
        (200, Some("cancelled")),
        "{stopped}"
    );
    let (_, ready) = sup.get("/ready");
    println!(
        "MEASURED stop -> slot free in {} ms: {ready}",
        t.elapsed().as_millis()
    );
    assert_eq!(
        ready["available_sessions"], 1,
        "the slot must be free right after the stop: {ready}"
    );
    println!(
        "MEASURED stop -> worker gone in {} ms",
        wait_gone(pid, Duration::from_secs(10)).as_millis()
    );
    let (_, again) = sup.post(&format!("/tasks/{task}/stop"));
    assert_eq!(again["status"], "cancelled", "stop is idempotent");
    assert!(zombies_of(sup.pid()).is_empty());

    // kill -9 of the worker mid-session.
    sup.wait_ready(Duration::from_secs(30));
    let task = launched(env, &sup, &room, "r", "avatar");
    sup.wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");
    let pid = sup.worker_of(&task);
    let t = Instant::now();
    signal(pid, Signal::SIGKILL);
    let failed = sup.wait_task(&task, Duration::from_secs(3), |t| t["status"] == "failed");
    println!(
        "MEASURED kill -9 -> task failed in {} ms: {}",
        t.elapsed().as_millis(),
        failed["error"]
    );
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("SIGKILL")),
        "{failed}"
    );
    wait_gone(pid, Duration::from_secs(3));
    assert!(zombies_of(sup.pid()).is_empty(), "zombie left behind");

    // SIGSTOP: the health monitor notices and kills it.
    let ready = sup.wait_ready(Duration::from_secs(30));
    assert_eq!(
        ready["available_sessions"], 1,
        "the slot must be reusable: {ready}"
    );
    let task = launched(env, &sup, &room, "r", "avatar");
    sup.wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");
    let pid = sup.worker_of(&task);
    let t = Instant::now();
    signal(pid, Signal::SIGSTOP);
    let gone = wait_gone(pid, Duration::from_secs(15));
    let failed = sup.wait_task(&task, Duration::from_secs(3), |t| t["status"] == "failed");
    println!(
        "MEASURED SIGSTOP -> killed and reaped in {} ms: {}",
        gone.as_millis(),
        failed["error"]
    );
    assert!(
        gone <= Duration::from_secs(12),
        "a hung worker must be killed within 10 s (took {gone:?})"
    );
    assert!(zombies_of(sup.pid()).is_empty());
    let kills = sup.metrics_text();
    assert!(
        kills.contains("lipcast_worker_kills_total{reason=\"hung\"} 1"),
        "hung kill not counted"
    );
    let _ = t;

    // The worker's own log lines (here its LiveKit crate's) reach the supervisor's log with the task id.
    assert!(
        sup.log().iter().any(|l| l.contains("lipcast_livekit::room")
            && l.contains(&task)
            && l.contains("joined LiveKit room")),
        "worker log lines with the task id are missing"
    );
    drop(agent);
}

/// The descriptors of `pid`: fd number -> what it points at (`pipe:[N]`, `socket:[N]`, a path, ...).
fn fds_of(pid: u32) -> std::collections::BTreeMap<i32, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            Some((n, target))
        })
        .collect()
}

/// What a worker in a session holds, from /proc: stdin is /dev/null, stdout and stderr one pipe, fd 3 the
/// guard pipe, and nothing else it shares with the supervisor (an inherited socket or file would share its
/// inode); no descriptor into the data dir; a bounded number of threads.
fn least_privilege(supervisor: u32, worker: u32, data_dir: &std::path::Path) {
    let fds = fds_of(worker);
    let ours = fds_of(supervisor);
    println!("MEASURED worker descriptors: {fds:?}");
    assert_eq!(
        fds.get(&0).map(String::as_str),
        Some("/dev/null"),
        "{fds:?}"
    );
    let out = fds.get(&1).cloned().unwrap_or_default();
    assert!(out.starts_with("pipe:"), "stdout is the log pipe: {fds:?}");
    assert_eq!(
        fds.get(&2),
        Some(&out),
        "stderr shares the log pipe: {fds:?}"
    );
    let guard = fds.get(&3).cloned().unwrap_or_default();
    assert!(
        guard.starts_with("pipe:") && guard != out,
        "fd 3 is the guard pipe: {fds:?}"
    );
    let shared: std::collections::BTreeSet<&String> = fds
        .values()
        // Pipes and sockets carry their inode number; the same one in both processes is the same object.
        .filter(|t| t.starts_with("pipe:") || t.starts_with("socket:"))
        .filter(|t| ours.values().any(|o| o == *t))
        .collect();
    let expected: std::collections::BTreeSet<&String> = [&out, &guard].into_iter().collect();
    assert_eq!(
        shared, expected,
        "the worker shares only its log pipe and its guard pipe with the supervisor"
    );
    let data = data_dir.display().to_string();
    assert!(
        fds.values().all(|t| !t.starts_with(&data)),
        "the worker holds something in the data dir: {fds:?}"
    );
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap_or_default();
    let threads: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    println!("MEASURED worker threads in a session: {threads}");
    assert!(
        (1..=64).contains(&threads),
        "a worker runs a bounded number of threads (its own blocking pool is capped at 8): {threads}"
    );
}

#[test]
fn workers_supervisor_crash_and_shutdown() {
    in_namespace(
        "workers_supervisor_crash_and_shutdown",
        LIMIT,
        supervisor_crash_and_shutdown,
    );
}

/// `kill -9` of the supervisor: its workers die with it (PDEATHSIG and the guard pipe), a restart finds no
/// orphan and closes the old tasks as failed; SIGTERM: stop admitting, end sessions, reap, exit 0.
fn supervisor_crash_and_shutdown(env: &TestEnv) {
    let room = LiveKitServer::start(env);
    let sup = Supervisor::start(&env.out_dir, &[("WARM_WORKERS", "1")]);
    sup.wait_ready(Duration::from_secs(60));
    let task = launched(env, &sup, &room, "r", "avatar");
    sup.wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");
    sup.wait_warm(1, Duration::from_secs(30));
    let workers = sup.worker_pids();
    assert!(
        workers.len() >= 2,
        "a session worker and a warm one: {workers:?}"
    );
    let data_dir = sup.data_dir.clone();
    let t = Instant::now();
    sup.kill9();
    for pid in &workers {
        wait_gone(*pid, Duration::from_secs(5));
    }
    println!(
        "MEASURED supervisor kill -9 -> all {} workers gone in {} ms",
        workers.len(),
        t.elapsed().as_millis()
    );

    let sup = Supervisor::start_in(&data_dir, &[("WARM_WORKERS", "1")]);
    let old = sup.wait_task(&task, Duration::from_secs(5), |t| t["status"] != "running");
    println!("after restart: {old}");
    assert_eq!(old["status"], "failed");
    assert_eq!(old["end_reason"], "supervisor_restarted");
    sup.wait_ready(Duration::from_secs(60));

    // Graceful shutdown with a session running.
    let task = launched(env, &sup, &room, "r2", "avatar2");
    sup.wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");
    let workers = sup.worker_pids();
    let (pid, http) = (sup.pid(), sup.http.clone());
    let url = sup.url("/ready");
    let t = Instant::now();
    sup.signal(Signal::SIGTERM);
    // While it drains, /ready says no. A request can still be served before the signal is handled, so poll:
    // once /ready has said anything but 200 it must be 503, and it must say so before the server is gone.
    let said_no = loop {
        match http.get(&url).timeout(Duration::from_secs(1)).send() {
            Ok(r) if r.status().as_u16() == 200 && t.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Ok(r) => {
                assert_eq!(r.status().as_u16(), 503, "/ready during shutdown");
                break t.elapsed();
            }
            Err(e) => panic!("the supervisor stopped serving before /ready said 503: {e}"),
        }
    };
    println!(
        "MEASURED SIGTERM -> /ready 503 in {} ms",
        said_no.as_millis()
    );
    let status = sup.terminate(Duration::from_secs(20));
    println!(
        "MEASURED SIGTERM -> exit {status} in {} ms",
        t.elapsed().as_millis()
    );
    assert!(status.success(), "exit status {status}");
    for w in workers {
        assert!(!exists(w), "worker {w} outlived the supervisor");
    }
    let _ = pid;
    let sup = Supervisor::start_in(&data_dir, &[("AUTO_PREWARM", "false")]);
    let (_, t) = sup.get(&format!("/tasks/{task}"));
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["end_reason"], "supervisor_shutdown", "{t}");
}

/// Launch/stop cycles to run: LIPCAST_CYCLES (default 30; scripts/soak.sh runs 1000).
fn cycles() -> usize {
    std::env::var("LIPCAST_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// MAX_TASK_HISTORY of the cycling supervisor: LIPCAST_MAX_TASK_HISTORY (default 1000, the setting's default).
fn task_history() -> usize {
    std::env::var("LIPCAST_MAX_TASK_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn workers_cycles_and_warm_pool() {
    // A soak of many cycles needs more than the usual bound: about 2 s per cycle, with room to spare.
    let limit = LIMIT + Duration::from_secs(6 * cycles() as u64);
    in_namespace("workers_cycles_and_warm_pool", limit, cycles_and_warm_pool);
}

/// Bytes of the task database (with its write-ahead log).
fn db_bytes(data_dir: &std::path::Path) -> u64 {
    ["lipcast.db", "lipcast.db-wal", "lipcast.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(data_dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Sum of the resident memory of `pids`, kB.
fn rss_of(pids: &[u32]) -> u64 {
    pids.iter().map(|p| supervisor_figures(*p).0).sum()
}

fn supervisor_figures(pid: u32) -> (u64, usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (field("VmRSS:"), fds, field("Threads:") as usize)
}

/// Warm launches are faster than cold ones (both printed); many launch/stop cycles leave no process, fd or
/// memory growth in the supervisor. LIPCAST_CYCLES (default 30) sets how many; the soak script runs 1000.
fn cycles_and_warm_pool(env: &TestEnv) {
    let room = LiveKitServer::start(env);
    let cycles = cycles();
    let history = task_history();

    // Cold: no prewarming, every launch starts a worker.
    let cold = Supervisor::start(&env.out_dir, &[("AUTO_PREWARM", "false")]);
    cold.wait_ready(Duration::from_secs(60));
    let mut cold_ms = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        let task = launched(env, &cold, &room, &format!("cold{i}"), "a");
        let run = cold.wait_task(&task, Duration::from_secs(20), |t| t["status"] == "running");
        cold_ms.push((
            t.elapsed().as_millis(),
            run["first_frame_ms"].as_i64().unwrap_or(-1),
        ));
        cold.post(&format!("/tasks/{task}/stop"));
    }
    drop(cold);

    let history_setting = history.to_string();
    let sup = Supervisor::start(
        &env.out_dir,
        &[
            ("WARM_WORKERS", "1"),
            ("MAX_SESSIONS", "4"),
            ("MAX_TASK_HISTORY", &history_setting),
            ("TASK_PRUNE_INTERVAL_SECONDS", "2"),
        ],
    );
    sup.wait_ready(Duration::from_secs(60));
    let mut warm_ms = Vec::new();
    for i in 0..3 {
        sup.wait_warm(1, Duration::from_secs(30));
        let t = Instant::now();
        let task = launched(env, &sup, &room, &format!("warm{i}"), "a");
        let run = sup.wait_task(&task, Duration::from_secs(20), |t| t["status"] == "running");
        warm_ms.push((
            t.elapsed().as_millis(),
            run["first_frame_ms"].as_i64().unwrap_or(-1),
        ));
        sup.post(&format!("/tasks/{task}/stop"));
    }
    println!(
        "MEASURED launch -> running (wall ms, first_frame_ms): cold {cold_ms:?} warm {warm_ms:?}"
    );
    let median = |v: &mut Vec<(u128, i64)>| {
        v.sort();
        v[v.len() / 2].0
    };
    let (c, w) = (median(&mut cold_ms.clone()), median(&mut warm_ms.clone()));
    assert!(
        w < c,
        "warm launches ({w} ms) must be faster than cold ones ({c} ms)"
    );

    // Cycles.
    sup.wait_warm(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let before = supervisor_figures(sup.pid());
    let workers_before = sup.worker_pids().len();
    let tasks_count =
        |sup: &Supervisor| sup.get("/tasks").1["tasks"].as_array().map_or(0, Vec::len);
    let figures = |sup: &Supervisor, label: &str| {
        let (rss, fds, threads) = supervisor_figures(sup.pid());
        let workers = sup.worker_pids();
        println!(
            "SOAK {label}: supervisor RSS {rss} kB, fds {fds}, threads {threads}; workers {} (RSS {} kB in all); tasks in history {}; database {} kB",
            workers.len(),
            rss_of(&workers),
            tasks_count(sup),
            db_bytes(&sup.data_dir) / 1024
        );
    };
    figures(&sup, "start");
    let every = (cycles / 10).max(10);
    let t = Instant::now();
    for i in 0..cycles {
        let task = launched(env, &sup, &room, &format!("cycle{i}"), "a");
        sup.wait_task(&task, Duration::from_secs(20), |t| t["status"] == "running");
        let (status, body) = sup.post(&format!("/tasks/{task}/stop"));
        assert_eq!(status, 200, "{body}");
        if (i + 1) % every == 0 {
            figures(
                &sup,
                &format!(
                    "after {} cycles ({:.0} s)",
                    i + 1,
                    t.elapsed().as_secs_f64()
                ),
            );
        }
    }
    let elapsed = t.elapsed();
    // Let the last workers exit and the pool settle.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sup.worker_pids().len() > workers_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    sup.wait_warm(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let after = supervisor_figures(sup.pid());
    let workers_after = sup.worker_pids().len();
    println!(
        "MEASURED {cycles} launch/stop cycles in {:.1} s: supervisor RSS {} -> {} kB, fds {} -> {}, threads {} -> {}, workers {} -> {}",
        elapsed.as_secs_f64(),
        before.0,
        after.0,
        before.1,
        after.1,
        before.2,
        after.2,
        workers_before,
        workers_after
    );
    assert_eq!(
        workers_after, workers_before,
        "worker processes left behind"
    );
    assert!(zombies_of(sup.pid()).is_empty(), "zombies left behind");
    assert!(
        after.1 <= before.1 + 4,
        "fd leak: {} -> {}",
        before.1,
        after.1
    );
    assert!(
        after.0 <= before.0 + 20_000,
        "supervisor RSS grew {} -> {} kB",
        before.0,
        after.0
    );
    figures(&sup, "end");
    // The history holds every task up to MAX_TASK_HISTORY, and no more (the pruner runs every 2 s).
    let want = (3 + cycles).min(history);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tasks_count(&sup) > want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        tasks_count(&sup),
        want,
        "the task history holds min(tasks, MAX_TASK_HISTORY={history})"
    );
}
