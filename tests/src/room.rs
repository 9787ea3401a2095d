//! The LiveKit-protocol test room (`tests/room/room.py`); killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::TestEnv;
use crate::{LK_SECRET, ROOM_IP};

pub struct RoomProcess {
    child: Child,
    pub port: u16,
    report: PathBuf,
}

impl RoomProcess {
    pub fn start(env: &TestEnv, port: u16) -> Self {
        Self::start_with(env, port, &[])
    }

    /// With extra room.py flags (e.g. `--no-record`).
    pub fn start_with(env: &TestEnv, port: u16, flags: &[&str]) -> Self {
        let report = env.out_dir.join(format!("room-{port}.json"));
        let log_path = env.out_dir.join(format!("room-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("room log: {e}"));
        let mut child = Command::new(crate::paths::python())
            .arg(crate::paths::room_dir().join("room.py"))
            .args([
                "--host",
                ROOM_IP,
                "--port",
                &port.to_string(),
                "--secret",
                LK_SECRET,
            ])
            .arg("--report")
            .arg(&report)
            .arg("--out-dir")
            .arg(&env.out_dir)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the test room: {e}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        assert!(
            line.contains("listening"),
            "the test room did not start (see {})",
            log_path.display()
        );
        Self {
            child,
            port,
            report,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{ROOM_IP}:{}", self.port)
    }

    /// `GET /control/...` on the room (remove a participant, close the room).
    pub fn control(&self, path: &str) {
        let mut s = TcpStream::connect((ROOM_IP, self.port))
            .unwrap_or_else(|e| panic!("control connect: {e}"));
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {ROOM_IP}\r\nConnection: close\r\n\r\n"
        );
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        assert!(resp.starts_with("HTTP/1.1 200"), "control {path}: {resp}");
    }

    /// The report as written so far (rewritten twice a second).
    pub fn report(&self) -> Value {
        let text =
            std::fs::read_to_string(&self.report).unwrap_or_else(|e| panic!("room report: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("room report JSON: {e}"))
    }

    /// Waits until `pred` holds on the report.
    pub fn wait_for(&self, within: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if self.report.exists() {
                let r = self.report();
                if pred(&r) {
                    return r;
                }
            }
            assert!(
                Instant::now() < deadline,
                "room: {what} not seen within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM: the room writes its final report and exits.
    pub fn stop_and_report(mut self) -> Value {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.report()
    }
}

impl Drop for RoomProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
