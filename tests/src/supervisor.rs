//! The real `lipcast-supervisor` binary on a free port with its own data dir, driven over HTTP. Killed on
//! drop (its workers die with it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub struct Supervisor {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    pub http: reqwest::blocking::Client,
    log: crate::output::Lines,
    /// Sent as `api-secret` by [`Supervisor::get`] and [`Supervisor::post`] when set ([`Supervisor::authed`]).
    secret: Option<String>,
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl Supervisor {
    /// Starts the supervisor with a new data dir under `dir` and `env` on top of test defaults, and waits
    /// until `/health` answers.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let data_dir = dir.join(format!("data-{}", free_port()));
        Self::start_in(&data_dir, env)
    }

    /// Starts on an existing data dir (a restart).
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(data_dir).unwrap_or_else(|e| panic!("{}: {e}", data_dir.display()));
        let port = free_port();
        let mut cmd = Command::new(crate::paths::release_bin("lipcast-supervisor"));
        cmd.current_dir(crate::paths::workspace())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATA_DIR", data_dir)
            .env("DEVICE", "cpu")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("API_SECRET")
            .env_remove("BITHUMAN_API_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting lipcast-supervisor: {e}"));
        let log = crate::output::capture(&mut child, |line| {
            if std::env::var_os("LIPCAST_TEST_LOG").is_some() {
                eprintln!("supervisor> {line}");
            }
        });
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|e| panic!("http client: {e}"));
        let s = Self {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
            http,
            log,
            secret: None,
        };
        s.wait_health(Duration::from_secs(15));
        s
    }

    /// From now on, `get` and `post` send `secret` (the supervisor runs with `API_SECRET`).
    pub fn authed(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_owned());
        self
    }

    fn with_auth(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.secret {
            Some(s) => req.header("api-secret", s),
            None => req,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the supervisor printed so far.
    pub fn log(&self) -> Vec<String> {
        crate::output::snapshot(&self.log)
    }

    fn wait_health(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = self
                .http
                .get(self.url("/health"))
                .timeout(Duration::from_secs(2))
                .send()
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/health did not answer within {within:?}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `/ready` says `ready` (the model pack verified, a slot free).
    pub fn wait_ready(&self, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get("/ready");
            if status == 200 {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/ready not 200 within {within:?}: {body}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A supervisor as a production deployment runs it in front of a LiveKit server: `API_SECRET` set (and sent
    /// by this client), `warm` workers pre-warmed; returns once `/ready` answers and they are all warm. `env`
    /// adds settings.
    pub fn start_warm(dir: &Path, secret: &str, warm: usize, env: &[(&str, &str)]) -> Self {
        let warm_setting = warm.to_string();
        let mut all = vec![
            ("AUTO_PREWARM", "true"),
            ("WARM_WORKERS", warm_setting.as_str()),
            ("API_SECRET", secret),
        ];
        all.extend_from_slice(env);
        let sup = Self::start(dir, &all).authed(secret);
        sup.wait_ready(Duration::from_secs(60));
        sup.wait_warm(warm as i64, Duration::from_secs(60 + 15 * warm as u64));
        sup
    }

    /// Waits until the pool holds `n` warm workers (per /metrics).
    pub fn wait_warm(&self, n: i64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self
                .metric("lipcast_warm_workers")
                .is_some_and(|v| v as i64 >= n)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} warm workers not there within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `path`: (status, JSON body or Null).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .with_auth(self.http.get(self.url(path)))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn post(&self, path: &str) -> (u16, Value) {
        self.post_within(path, Duration::from_secs(60))
    }

    /// `post` with its own timeout (a benchmark of a pack far slower than real time takes minutes).
    pub fn post_within(&self, path: &str, timeout: Duration) -> (u16, Value) {
        let r = self
            .with_auth(self.http.post(self.url(path)))
            .timeout(timeout)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The task record, polled until `pred` holds.
    pub fn wait_task(
        &self,
        task_id: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, task) = self.get(&format!("/tasks/{task_id}"));
            if pred(&task) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {task_id} did not reach the expected state within {within:?}: {task}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The task record, polled until the task has ended (neither pending nor running).
    pub fn wait_ended(&self, task_id: &str, within: Duration) -> Value {
        self.wait_task(task_id, within, |t| {
            t["status"] != "running" && t["status"] != "pending"
        })
    }

    /// The one task `GET /tasks` lists for `room`.
    pub fn task_in_room(&self, room: &str) -> Value {
        let (_, tasks) = self.get("/tasks");
        tasks["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["room_name"] == room))
            .cloned()
            .unwrap_or_else(|| panic!("no task for room {room}: {tasks}"))
    }

    /// The value of an unlabelled sample in /metrics (e.g. `lipcast_sessions_active`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    }

    /// The /metrics exposition.
    pub fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
    }

    /// Cumulative buckets (upper bound, count) of histogram `name` (unlabelled), from /metrics.
    pub fn histogram(&self, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        self.metrics_text()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (le, tail) = rest.split_once('"')?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, tail.split_whitespace().last()?.parse().ok()?))
            })
            .collect()
    }

    /// PIDs of the worker processes this supervisor runs now (its children).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// The PID of the worker serving `task_id`: the child whose log lines carry the task id (waits up to 10 s
    /// for one).
    pub fn worker_of(&self, task_id: &str) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for line in self.log() {
                if line.contains(task_id)
                    && let Some(pid) = line
                        .split("pid=")
                        .nth(1)
                        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|s| s.parse::<u32>().ok())
                    && self.worker_pids().contains(&pid)
                {
                    return pid;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no worker log line names task {task_id}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(
            Pid::from_raw(i32::try_from(self.pid()).unwrap_or(i32::MAX)),
            sig,
        );
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the supervisor did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait for the exit, and everything it printed up to its end.
    pub fn terminate_with_log(self, within: Duration) -> (ExitStatus, Vec<String>) {
        let log = self.log.clone();
        let status = self.terminate(within);
        // The readers drain the pipes after the exit; give them a moment.
        std::thread::sleep(Duration::from_millis(300));
        let lines = crate::output::snapshot(&log);
        (status, lines)
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Direct children of `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(st) = proc_stat(child)
            && st.ppid == pid
        {
            out.push(child);
        }
    }
    out
}

/// The fields of /proc/<pid>/stat the tests look at.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub state: char,
    pub ppid: u32,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some(ProcStat { state, ppid })
}

/// CPU time `pid` has used so far (user + system), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    Some(ticks as f64 / hz as f64)
}

/// True while `pid` exists (a zombie counts: it is not reaped).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
