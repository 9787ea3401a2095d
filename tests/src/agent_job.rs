//! A whole voice agent as users run one (`tests/room/agent_job.py`): a `livekit-agents` worker registered with
//! the real `livekit-server`, which dispatches it a job when a room is created; the job runs an
//! `AgentSession` with espeak-ng TTS whose avatar is `livekit-plugins-bithuman`'s own
//! `AvatarSession(api_url=<lipcast>/launch)`. The job follows a script (what to say, pauses) and writes JSON
//! events to a file the test reads. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::TestEnv;
use crate::{LK_KEY, LK_SECRET};

/// How the plugin is configured and what the job does.
#[derive(Debug, Clone)]
pub struct JobScript {
    /// `None`: JSON (the plugin's default); `Some("expression")`: multipart.
    pub model: Option<String>,
    /// The `api_url` the plugin POSTs to (lipcast's `/launch`, maybe with `?async=true`).
    pub api_url: String,
    /// Sent as `api-secret` (JSON) or `Authorization: Bearer` (multipart).
    pub api_secret: String,
    /// A local portrait path (the plugin opens it and sends it as JPEG).
    pub avatar_image: PathBuf,
    /// Seconds to wait once the avatar's video is there, then each utterance and the pause after it.
    pub lead_in: f64,
    pub utterances: Vec<Utterance>,
    /// Seconds to stay in the room, silent, after the last utterance, before ending the job.
    pub stay: f64,
    /// Rooms the worker serves at once: it keeps that many job processes ready (each job runs in a process of
    /// its own, which takes seconds to start on a busy machine).
    pub parallel_jobs: u32,
}

impl JobScript {
    /// The plugin in its default (JSON) format against `api_url` with `api_secret` and the default portrait,
    /// saying `utterances` after a 3 s lead-in, one room at a time, leaving at once; change any field with
    /// struct-update syntax.
    pub fn new(api_url: String, api_secret: &str, utterances: Vec<Utterance>) -> Self {
        Self {
            model: None,
            api_url,
            api_secret: api_secret.to_owned(),
            avatar_image: crate::paths::workspace().join("models/portraits/default.jpg"),
            lead_in: 3.0,
            utterances,
            stay: 0.0,
            parallel_jobs: 1,
        }
    }
}

/// One thing the agent says.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub text: String,
    /// Seconds of silence after it.
    pub pause: f64,
    /// Interrupt it this many seconds after its playout started (`None`: it plays out whole).
    pub interrupt_after: Option<f64>,
}

impl Utterance {
    /// An utterance that plays out whole.
    pub fn said(text: &str, pause: f64) -> Self {
        Self {
            text: text.to_owned(),
            pause,
            interrupt_after: None,
        }
    }
}

/// The agents worker process and the events of the job(s) it ran.
pub struct AgentJob {
    child: Child,
    events_path: PathBuf,
    log: crate::output::Lines,
}

impl AgentJob {
    /// Starts the worker against the server at `url` and waits until it registered.
    pub fn start(env: &TestEnv, url: &str, script: &JobScript) -> Self {
        let events_path = env.out_dir.join("agent-job-events.jsonl");
        let _ = std::fs::remove_file(&events_path);
        let script_json = serde_json::json!({
            "model": script.model, "api_url": script.api_url, "api_secret": script.api_secret,
            "avatar_image": script.avatar_image, "lead_in": script.lead_in, "stay": script.stay,
            "idle_processes": script.parallel_jobs.max(1),
            "utterances": script.utterances.iter()
                .map(|u| serde_json::json!([u.text, u.pause, u.interrupt_after]))
                .collect::<Vec<_>>(),
        });
        let mut child = Command::new(crate::paths::agents_python())
            .arg(crate::paths::room_dir().join("agent_job.py"))
            .arg("start")
            .env("LIVEKIT_URL", url)
            .env("LIVEKIT_API_KEY", LK_KEY)
            .env("LIVEKIT_API_SECRET", LK_SECRET)
            .env("LIPCAST_JOB_EVENTS", &events_path)
            .env("LIPCAST_JOB_SCRIPT", script_json.to_string())
            .env_remove("BITHUMAN_API_URL")
            .env_remove("BITHUMAN_API_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting agent_job.py: {e}"));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let log = crate::output::capture(&mut child, move |line| {
            println!("agent-job> {line}");
            if line.contains("registered worker") {
                let _ = tx.send(());
            }
        });
        let job = Self {
            child,
            events_path,
            log,
        };
        let t = Instant::now();
        assert!(
            rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            "the livekit-agents worker did not register with livekit-server within 60 s; its log:\n{}",
            job.log().join("\n")
        );
        println!("agents worker registered in {} ms", t.elapsed().as_millis());
        job
    }

    /// Everything the worker printed.
    pub fn log(&self) -> Vec<String> {
        crate::output::snapshot(&self.log)
    }

    /// The job's events so far.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The events of the job that serves `room` (every event names its job's room).
    pub fn events_in(&self, room: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["room"] == room)
            .collect()
    }

    /// Waits for the job event `event`; panics on an `error` event.
    pub fn expect(&self, event: &str, within: Duration) -> Value {
        self.expect_where(event, within, |_| true)
    }

    /// Waits for the event `event` of the job that serves `room`; panics on an `error` event of any job.
    pub fn expect_in(&self, room: &str, event: &str, within: Duration) -> Value {
        self.expect_where(event, within, |e| e["room"] == room)
    }

    fn expect_where(&self, event: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let events = self.events();
            if let Some(e) = events.iter().find(|e| e["event"] == "error") {
                panic!("agent job error while waiting for {event}: {e}");
            }
            if let Some(e) = events.into_iter().find(|e| e["event"] == event && pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "agent job: no {event} within {within:?} (events: {:?})",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for AgentJob {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
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
