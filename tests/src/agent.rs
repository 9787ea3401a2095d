//! The agent side: LiveKit's real Python SDK (`tests/room/agent.py`, the same engine as the worker), driven by
//! commands on stdin; its JSON-line events are collected. Killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Agent {
    /// Joins `url` with `token`, serving avatar `avatar`, with LiveKit's Python SDK (`agent.py`).
    pub fn start(url: &str, token: &str, avatar: &str, no_playback_started: bool) -> Self {
        let mut cmd = Command::new(crate::paths::python());
        cmd.arg(crate::paths::room_dir().join("agent.py"))
            .args(["--url", url, "--token", token, "--avatar", avatar]);
        if no_playback_started {
            cmd.arg("--no-playback-started");
        }
        Self::spawn(cmd)
    }

    /// The same, with livekit-agents' own `DataStreamAudioOutput` (`agents_agent.py`).
    pub fn start_agents(url: &str, token: &str, avatar: &str) -> Self {
        let mut cmd = Command::new(crate::paths::agents_python());
        cmd.arg(crate::paths::room_dir().join("agents_agent.py"))
            .args(["--url", url, "--token", token, "--avatar", avatar]);
        Self::spawn(cmd)
    }

    /// Any helper that speaks the same way (commands on stdin, JSON-line events on stdout), e.g. the viewer.
    pub fn from_command(cmd: Command) -> Self {
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting agent.py: {e}"));
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    println!("agent> {line}");
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        let _ = tx.send(v);
                    }
                }
            });
        }
        Self {
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, cmd: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("agent stdin closed"));
        writeln!(stdin, "{cmd}").unwrap_or_else(|e| panic!("agent command {cmd}: {e}"));
        let _ = stdin.flush();
    }

    /// Closes the helper's stdin (the helpers take that as "finish and exit").
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub fn expect(&mut self, event: &str, within: Duration) -> Value {
        self.expect_where(event, within, |_| true)
    }

    pub fn expect_where(
        &mut self,
        event: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self
            .seen
            .iter()
            .position(|v| v["event"] == event && pred(v))
        {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if v["event"] == event && pred(&v) => return v,
                Ok(v) if v["event"] == "error" => {
                    panic!("agent error while waiting for {event}: {v}")
                }
                Ok(v) => self.seen.push(v),
                Err(_) => panic!(
                    "agent: no {event} within {within:?} (seen: {:?})",
                    self.seen
                ),
            }
        }
    }

    /// Every event of kind `event` seen so far (collecting what arrived).
    pub fn all(&mut self, event: &str) -> Vec<Value> {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        self.seen
            .iter()
            .filter(|v| v["event"] == event)
            .cloned()
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
