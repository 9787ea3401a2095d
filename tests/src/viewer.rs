//! A viewer in a real LiveKit room (`tests/room/viewer.py`, LiveKit's Python SDK): subscribes to the avatar's
//! tracks and decodes them; its report has the shape of the test room's participant records.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Agent;
use crate::netns::TestEnv;

/// The viewer process and where its report goes. Killed on drop.
pub struct Viewer {
    /// Its JSON-line events (connected, participant_connected, track_subscribed, first_frame, ...).
    pub events: Agent,
    /// The `connected` event (its `unix` is when the viewer's join completed).
    pub connected: Value,
    report: PathBuf,
}

impl Viewer {
    /// Joins `url` as `identity` (a plain participant) in `room` with a token of the test keys.
    pub fn start(env: &TestEnv, url: &str, room: &str, identity: &str) -> Self {
        let report = env.out_dir.join(format!("viewer-{identity}.json"));
        let mut cmd = Command::new(crate::paths::python());
        cmd.arg(crate::paths::room_dir().join("viewer.py"))
            .args(["--url", url, "--token"])
            .arg(env.mint(identity, room, "", &[]))
            .arg("--report")
            .arg(&report)
            .arg("--out-dir")
            .arg(&env.out_dir);
        let mut events = Agent::from_command(cmd);
        let connected = events.expect("connected", Duration::from_secs(20));
        Self {
            events,
            connected,
            report,
        }
    }

    /// Asks the viewer to stop (its stdin closes), waits for the final report and returns it.
    pub fn stop_and_report(mut self) -> Value {
        self.events.close_stdin();
        let _ = self.events.expect("stopped", Duration::from_secs(10));
        self.report()
    }

    /// The report as written so far (rewritten every second).
    pub fn report(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.report)
                && let Ok(v) = serde_json::from_str(&text)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no viewer report at {}",
                self.report.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
