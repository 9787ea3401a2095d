//! The real `livekit-server` (the pinned release `scripts/livekit-server.sh` builds with `go install`), started
//! inside the test's network namespace with a config of ours: our keys, one RTC UDP port and one TCP port,
//! `node_ip` on the veth address (ICE ignores loopback). Killed on drop; its log stays in the test's out dir.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::TestEnv;
use crate::{LK_KEY, LK_SECRET, ROOM_IP};

/// The pinned version: the `livekit/livekit-server` image tag of the compose demo, the one place that names it
/// (`scripts/livekit-server.sh` reads the same line).
pub fn pinned_version() -> String {
    let compose = crate::paths::workspace().join("deploy/docker-compose.yml");
    let text =
        std::fs::read_to_string(&compose).unwrap_or_else(|e| panic!("{}: {e}", compose.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("image: livekit/livekit-server:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no livekit/livekit-server image in {}", compose.display()))
}

/// The built binary (`LIVEKIT_SERVER_BIN` overrides).
pub fn binary() -> PathBuf {
    let path = std::env::var_os("LIVEKIT_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::paths::workspace()
                .join(".tools/livekit-server")
                .join(pinned_version())
                .join("livekit-server")
        });
    assert!(
        path.is_file(),
        "{} is missing: run scripts/livekit-server.sh (scripts/test.sh does; it needs Go)",
        path.display()
    );
    path
}

/// Ports of one server: signalling (HTTP/WebSocket and the room service API), RTC over TCP, RTC over UDP (one
/// port, muxed), and its Prometheus metrics (NACKs, PLIs, packets per direction: what a test of loss reads).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub rtc_tcp: u16,
    pub rtc_udp: u16,
    pub prometheus: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            http: 7880,
            rtc_tcp: 7881,
            rtc_udp: 7882,
            prometheus: 7889,
        }
    }
}

/// A running `livekit-server`.
pub struct LiveKitServer {
    child: Option<Child>,
    pub ports: Ports,
    config: PathBuf,
    log: PathBuf,
    /// How long the last start took until the server answered.
    pub started_in: Duration,
}

/// `node_ip` is the address the server advertises for its media port: `ROOM_IP` itself, or a relay's
/// (`crate::delay`), in which case the server binds its UDP port on `ROOM_IP` alone, leaving the relay its own.
fn config_text(ports: Ports, node_ip: &str) -> String {
    let ips = if node_ip == ROOM_IP {
        String::new()
    } else {
        format!("  ips:\n    includes: [\"{ROOM_IP}/32\"]\n")
    };
    format!(
        "# written by the lipcast tests (tests/src/livekit_server.rs)\n\
         port: {http}\n\
         bind_addresses: [\"{ROOM_IP}\"]\n\
         rtc:\n  tcp_port: {tcp}\n  udp_port: {udp}\n  node_ip: {node_ip}\n  use_external_ip: false\n{ips}\
         keys:\n  {LK_KEY}: {LK_SECRET}\n\
         logging:\n  level: info\n\
         room:\n  empty_timeout: 30\n  departure_timeout: 5\n\
         prometheus:\n  port: {prom}\n",
        http = ports.http,
        prom = ports.prometheus,
        tcp = ports.rtc_tcp,
        udp = ports.rtc_udp,
    )
}

impl LiveKitServer {
    /// Starts a server on the default ports and waits until it serves.
    pub fn start(env: &TestEnv) -> Self {
        Self::start_on(env, Ports::default())
    }

    pub fn start_on(env: &TestEnv, ports: Ports) -> Self {
        Self::start_with(env, ports, ROOM_IP)
    }

    /// Starts a server on the default ports that advertises `node_ip` for its media port, where a
    /// [`crate::delay::DelayRelay`] stands: clients send their media to the relay, the relay to the server.
    pub fn start_behind_relay(env: &TestEnv, node_ip: &str) -> Self {
        Self::start_with(env, Ports::default(), node_ip)
    }

    fn start_with(env: &TestEnv, ports: Ports, node_ip: &str) -> Self {
        let config = env.out_dir.join(format!("livekit-{}.yaml", ports.http));
        std::fs::write(&config, config_text(ports, node_ip))
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let log = env.out_dir.join(format!("livekit-{}.log", ports.http));
        let mut s = Self {
            child: None,
            ports,
            config,
            log,
            started_in: Duration::ZERO,
        };
        s.restart();
        s
    }

    /// (Re)starts the process with the same config; waits until it answers HTTP.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "livekit-server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let t = Instant::now();
        let child = Command::new(binary())
            .arg("--config")
            .arg(&self.config)
            .env_remove("LIVEKIT_KEYS")
            .env_remove("LIVEKIT_CONFIG")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting livekit-server: {e}"));
        self.child = Some(child);
        self.wait_serving(Duration::from_secs(20));
        self.started_in = t.elapsed();
    }

    fn wait_serving(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.answers() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "livekit-server exited at start ({status}); log {}:\n{}",
                    self.log.display(),
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "livekit-server did not answer within {within:?}; log {}:\n{}",
                self.log.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True when `GET /` answers 200 (livekit-server's health check).
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &(
                ROOM_IP.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST),
                self.ports.http,
            )
                .into(),
            Duration::from_millis(500),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if write!(
            s,
            "GET / HTTP/1.1\r\nHost: {ROOM_IP}\r\nConnection: close\r\n\r\n"
        )
        .is_err()
        {
            return false;
        }
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.starts_with("HTTP/1.1 200")
    }

    /// The WebSocket URL clients join.
    pub fn url(&self) -> String {
        format!("ws://{ROOM_IP}:{}", self.ports.http)
    }

    /// The server's Prometheus exposition (text; HTTP/1.0, so never chunked), or an empty string when it does not
    /// answer.
    pub fn metrics_text(&self) -> String {
        let Ok(mut s) = TcpStream::connect_timeout(
            &(
                ROOM_IP.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST),
                self.ports.prometheus,
            )
                .into(),
            Duration::from_millis(500),
        ) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: {ROOM_IP}\r\n\r\n");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// The sum of the samples of metric `name` whose labels contain every `label="value"` of `labels`.
    pub fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.metrics_text()
            .lines()
            .filter(|l| {
                l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|lb| l.contains(lb))
            })
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    }

    /// Calls the server's room service API (Twirp, JSON) with an admin token of the test keys: e.g.
    /// `room_service("RemoveParticipant", room, json!({"room": room, "identity": who}))`. Panics unless it
    /// answers 200. Blocking: call it off an async runtime's threads.
    pub fn room_service(
        &self,
        method: &str,
        room: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let url = format!(
            "http://{ROOM_IP}:{}/twirp/livekit.RoomService/{method}",
            self.ports.http
        );
        let reply = reqwest::blocking::Client::new()
            .post(&url)
            .bearer_auth(crate::token::admin(LK_SECRET, room))
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let status = reply.status();
        let text = reply.text().unwrap_or_default();
        assert!(status.is_success(), "{method}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// CPU time the server has used since it (re)started, in seconds (0 when it is not running).
    pub fn cpu_seconds(&self) -> f64 {
        self.child
            .as_ref()
            .and_then(|c| crate::supervisor::cpu_seconds(c.id()))
            .unwrap_or(0.0)
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `kill -9` (a crash): the process is gone, its rooms with it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (at most 10 s) for the exit; kills it after that.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(i32::MAX)),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LiveKitServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_names_our_keys_ports_and_node_ip() {
        let c = super::config_text(super::Ports::default(), crate::ROOM_IP);
        assert!(c.contains("port: 7880\n"), "{c}");
        assert!(c.contains("udp_port: 7882"), "{c}");
        assert!(c.contains("node_ip: 10.77.0.1"), "{c}");
        assert!(c.contains("prometheus:\n  port: 7889\n"), "{c}");
        assert!(!c.contains("ips:"), "{c}");
        let relayed = super::config_text(super::Ports::default(), crate::delay::RELAY_IP);
        assert!(relayed.contains("node_ip: 10.77.0.3"), "{relayed}");
        assert!(
            relayed.contains("includes: [\"10.77.0.1/32\"]"),
            "{relayed}"
        );
        assert!(
            c.contains(&format!("{}: {}", crate::LK_KEY, crate::LK_SECRET)),
            "{c}"
        );
    }

    #[test]
    fn the_pin_is_the_compose_demo_version() {
        let v = super::pinned_version();
        assert!(v.starts_with('v') && v.split('.').count() == 3, "{v}");
    }
}
