//! The compose demo's own parts, run from the checkout as a user would run them: the web page and its token
//! endpoint (`deploy/web/server.py`, serving LiveKit's browser SDK from `npm ci`'s `node_modules`), the demo
//! agent (`deploy/agent/agent.py`: livekit-agents + livekit-plugins-bithuman, `LLM=none` speaks a canned
//! sentence with espeak-ng), and the page in Debian's `chromium` driven by playwright-core
//! (`tests/browser/demo_page.mjs`). Each process is stopped on drop (SIGTERM, then SIGKILL).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::TestEnv;
use crate::{LK_KEY, LK_SECRET, ROOM_IP};

/// Debian's Chromium (`apt-get install chromium`; scripts/test.sh does). `LIPCAST_CHROMIUM` overrides.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("LIPCAST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (it installs Debian's chromium)",
        path.display()
    );
    path
}

fn installed(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it runs `npm ci` for {what})",
        path.display()
    );
    path
}

/// The browser test's folder, with playwright-core installed by `npm ci`.
pub fn browser_dir() -> PathBuf {
    let dir = crate::paths::workspace().join("tests/browser");
    installed(dir.join("node_modules/playwright-core"), "tests/browser");
    dir
}

/// A child process of the demo, its output kept (and echoed with `name> `), stopped on drop.
pub struct Service {
    name: String,
    child: Child,
    lines: crate::output::Lines,
}

impl Service {
    /// Starts `cmd` and, with `ready`, waits (at most `within`) until a line containing it is printed.
    fn start(name: &str, mut cmd: Command, ready: Option<&str>, within: Duration) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (prefix, wanted) = (format!("{name}> "), ready.map(str::to_owned));
        let lines = crate::output::capture(&mut child, move |line| {
            println!("{prefix}{line}");
            if wanted.as_deref().is_some_and(|r| line.contains(r)) {
                let _ = tx.send(());
            }
        });
        let mut s = Self {
            name: name.to_owned(),
            child,
            lines,
        };
        if ready.is_some() {
            let t = Instant::now();
            let ok = rx.recv_timeout(within).is_ok();
            assert!(
                ok && s.running(),
                "{name} was not ready within {within:?}; it printed:\n{}",
                s.log().join("\n")
            );
            println!("{name} ready in {} ms", t.elapsed().as_millis());
        }
        s
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it printed so far.
    pub fn log(&self) -> Vec<String> {
        crate::output::snapshot(&self.lines)
    }

    /// SIGTERM, then SIGKILL after 5 s; reaped.
    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("{} did not exit within 5 s of SIGTERM: killed", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `deploy/web/server.py` on `port` of the namespace's veth address, with the test server's keys.
pub struct DemoWeb {
    pub service: Service,
    pub port: u16,
}

impl DemoWeb {
    /// Starts the page's server (no `LIVEKIT_PUBLIC_URL`: the token endpoint names the LiveKit server on the
    /// page's own host, port 7880, as in the compose demo) and waits until `/healthz` answers.
    pub fn start(port: u16) -> Self {
        let web = crate::paths::workspace().join("deploy/web");
        installed(
            web.join("node_modules/livekit-client/dist/livekit-client.umd.js"),
            "deploy/web",
        );
        let mut cmd = Command::new(crate::paths::python());
        cmd.arg("-u")
            .arg(web.join("server.py"))
            .env("PORT", port.to_string())
            .env("LIVEKIT_API_KEY", LK_KEY)
            .env("LIVEKIT_API_SECRET", LK_SECRET)
            .env_remove("LIVEKIT_PUBLIC_URL");
        let s = Self {
            service: Service::start("web", cmd, Some("demo page on"), Duration::from_secs(20)),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !get_ok(&s.url("/healthz")) {
            assert!(
                Instant::now() < deadline,
                "the demo page's /healthz did not answer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// A URL of the page as a browser in the namespace reaches it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{ROOM_IP}:{}{path}", self.port)
    }
}

fn get_ok(url: &str) -> bool {
    reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .is_ok_and(|r| r.status().is_success())
}

/// `deploy/agent/agent.py` as its image runs it (`python -m livekit.agents start agent.py`), in the venv with
/// livekit-agents and livekit-plugins-bithuman.
pub struct DemoAgent {
    pub service: Service,
}

impl DemoAgent {
    /// Registers with the LiveKit server at `livekit_url`; its avatar is lipcast at `launch_url`. `env` goes
    /// on top (e.g. `LLM=none`, `CANNED_REPEAT_SECONDS`). Waits until the agents worker registered.
    pub fn start(
        test: &TestEnv,
        livekit_url: &str,
        launch_url: &str,
        secret: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = crate::paths::workspace().join("deploy/agent");
        let mut cmd = Command::new(crate::paths::agents_python());
        cmd.current_dir(&dir)
            .args(["-m", "livekit.agents", "start", "agent.py"])
            .env("LIVEKIT_URL", livekit_url)
            .env("LIVEKIT_API_KEY", LK_KEY)
            .env("LIVEKIT_API_SECRET", LK_SECRET)
            .env("LIPCAST_URL", launch_url)
            .env("LIPCAST_API_SECRET", secret)
            .env(
                "AVATAR_IMAGE",
                crate::paths::workspace().join("models/portraits/default.jpg"),
            )
            .env("PYTHONUNBUFFERED", "1")
            // espeak_tts.py writes its temporary WAVs here.
            .env("TMPDIR", &test.out_dir)
            .env_remove("OPENAI_API_KEY")
            .env_remove("BITHUMAN_API_URL")
            .env_remove("BITHUMAN_API_SECRET");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            service: Service::start(
                "demo-agent",
                cmd,
                Some("registered worker"),
                Duration::from_secs(60),
            ),
        }
    }
}

/// Runs `tests/browser/demo_page.mjs` with `config` (JSON; `chromium`, `out_dir` and `profile_dir` are filled
/// in), bounded by `limit`, and returns the JSON line it prints last.
pub fn run_demo_page(env: &TestEnv, mut config: Value, limit: Duration) -> Value {
    let dir = browser_dir();
    let profile = env.out_dir.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap_or_else(|e| panic!("{}: {e}", profile.display()));
    config["chromium"] = Value::from(chromium().to_string_lossy().into_owned());
    config["out_dir"] = Value::from(env.out_dir.to_string_lossy().into_owned());
    config["profile_dir"] = Value::from(profile.to_string_lossy().into_owned());
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg(dir.join("demo_page.mjs"))
        .arg(config.to_string())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("HOME", &env.out_dir);
    let mut node = Service::start("browser", cmd, None, Duration::ZERO);
    let deadline = Instant::now() + limit;
    while node.running() {
        if Instant::now() > deadline {
            node.stop();
            panic!(
                "the browser script did not finish within {limit:?}; it printed:\n{}",
                node.log().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The readers drain the pipes after the exit.
    std::thread::sleep(Duration::from_millis(200));
    let log = node.log();
    log.iter()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("ok").is_some())
        })
        .unwrap_or_else(|| {
            panic!(
                "the browser script printed no result; its output:\n{}",
                log.join("\n")
            )
        })
}

/// The `width=`/`height=` the worker logged when it published `avatar_video` (from the supervisor's log).
pub fn published_size(log: &[String]) -> Option<(u32, u32)> {
    let line = log.iter().find(|l| l.contains("published avatar_video"))?;
    let field = |name: &str| -> Option<u32> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("width")?, field("height")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_published_size_is_read_from_the_workers_log_line() {
        let log = vec![
            "x".to_owned(),
            "2026-01-01T00:00:00Z INFO lipcast::worker: published avatar_video sid=TR_1 codec=H264 width=512 \
             height=512 fps=25 bitrate=1000000"
                .to_owned(),
        ];
        assert_eq!(super::published_size(&log), Some((512, 512)));
        assert_eq!(super::published_size(&log[..1]), None);
    }
}
