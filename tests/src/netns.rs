//! Network namespaces for WebRTC tests: ICE ignores loopback, so the test room, the supervisor, its workers
//! and the agent all run inside a fresh namespace with a veth pair (10.77.0.1 <-> 10.77.0.2) that the test
//! creates and deletes, also on failure.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const INNER_ENV: &str = "LIPCAST_E2E_INNER";
static NS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// What a test body gets: where to put its files.
pub struct TestEnv {
    pub name: String,
    /// Room logs, reports, PNGs and WAVs; removed after a passing test unless LIPCAST_TEST_KEEP is set.
    pub out_dir: PathBuf,
}

impl TestEnv {
    fn new(name: &str) -> Self {
        let out_dir = std::env::temp_dir().join(format!("lipcast-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&out_dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", out_dir.display()));
        Self {
            name: name.to_owned(),
            out_dir,
        }
    }

    /// A token signed with the test room's secret.
    pub fn mint(&self, identity: &str, room: &str, kind: &str, attrs: &[(&str, &str)]) -> String {
        crate::token::mint(crate::LK_SECRET, identity, room, kind, attrs)
    }
}

/// A network namespace with a veth pair; deleted on drop (after killing what still runs in it).
pub struct Netns {
    pub name: String,
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} {args:?}: {e} (end-to-end tests need root and iproute2)")
    });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {} (end-to-end tests need root and iproute2)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn create() -> Self {
        let name = format!(
            "lce{}x{}",
            std::process::id(),
            NS_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        let n = ns.name.as_str();
        let ip = |args: &[&str]| {
            let mut all = vec!["netns", "exec", n, "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        ip(&["link", "set", "lo", "up"]);
        ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
        ip(&["addr", "add", "10.77.0.1/24", "dev", "va"]);
        ip(&["addr", "add", "10.77.0.2/24", "dev", "vb"]);
        ip(&["link", "set", "va", "up"]);
        ip(&["link", "set", "vb", "up"]);
        ns
    }
}

impl Netns {
    /// Runs this very executable again inside the namespace with `args` (marked as the inner run of `name`),
    /// and waits for it, at most `limit` (then kills it: `None`).
    fn rerun_inside(
        &self,
        name: &str,
        args: &[std::ffi::OsString],
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(&exe)
            .args(args)
            .env(INNER_ENV, name)
            .spawn()
            .unwrap_or_else(|e| panic!("re-executing {} in {}: {e}", exe.display(), self.name));
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still running in the namespace was started by this test: end it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// From inside a test's namespace: a default route over the veth (`vb`, source 10.77.0.2). A browser without
/// camera or microphone permission gathers ICE candidates only on the interface of its default route, as on
/// any machine with a network; the namespace has none until this. Nothing leaves the namespace: no address
/// beyond the veth answers.
pub fn add_default_route() {
    run("ip", &["route", "add", "default", "dev", "vb"]);
}

/// Runs `body` inside a fresh namespace: the outer call creates it and re-executes this very test there
/// (`ip netns exec NS <test binary> --exact <name>`), bounded by `limit`.
pub fn in_namespace(name: &str, limit: Duration, body: fn(&TestEnv)) {
    if std::env::var(INNER_ENV).as_deref() == Ok(name) {
        let env = TestEnv::new(name);
        body(&env);
        // Kept on failure (the panic skips this) or with LIPCAST_TEST_KEEP: logs, reports, PNGs, WAVs.
        if std::env::var_os("LIPCAST_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&env.out_dir);
        } else {
            println!("kept {}", env.out_dir.display());
        }
        return;
    }
    // Fail early and clearly on missing prerequisites.
    crate::paths::python();
    let ns = Netns::create();
    // `--include-ignored`: an ignored test the caller asked for (`--run-ignored`) must run inside too, not pass
    // there as "ignored".
    let args: Vec<std::ffi::OsString> = [
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let status = ns.rerun_inside(name, &args, limit);
    drop(ns);
    let status = status.unwrap_or_else(|| panic!("{name} timed out after {limit:?}"));
    assert!(
        status.success(),
        "{name} failed inside its namespace ({status}); see the output above"
    );
}

/// For binaries (benchmarks): inside a namespace already, returns `TestEnv` to run in; otherwise creates one,
/// re-executes this program with the same arguments inside it, and exits with its status.
pub fn enter_namespace(name: &str, limit: Duration) -> TestEnv {
    if std::env::var(INNER_ENV).as_deref() == Ok(name) {
        return TestEnv::new(name);
    }
    let ns = Netns::create();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let status = ns
        .rerun_inside(name, &args, limit)
        .map_or(124, |s| s.code().unwrap_or(1));
    drop(ns);
    std::process::exit(status);
}

/// From inside a test's namespace: one more address on the server's end of the veth (`va`, beside 10.77.0.1).
pub fn add_address(ip: &str) {
    run("ip", &["addr", "add", &format!("{ip}/24"), "dev", "va"]);
}

/// From inside a test's namespace: the server's RTC port (`server_ip`, UDP `port`, and its TCP `tcp_port`)
/// talks only to the relay's back sockets (`relay_ip`, UDP `relay_ports`). Every client lives in this namespace
/// and would otherwise find a direct ICE pair to the server (its host candidates answer the server's checks);
/// with these rules the only pair that works runs through the relay.
pub fn only_through_relay(
    server_ip: &str,
    port: u16,
    tcp_port: u16,
    relay_ip: &str,
    relay_ports: std::ops::RangeInclusive<u16>,
) {
    let nft = |rule: &str| run("nft", &[rule]);
    let (lo, hi) = (relay_ports.start(), relay_ports.end());
    nft("add table inet lipcast_relay");
    nft("add chain inet lipcast_relay out { type filter hook output priority 0; policy accept; }");
    nft(&format!(
        "add rule inet lipcast_relay out ip saddr {server_ip} udp sport {port} ip daddr != {relay_ip} counter drop"
    ));
    nft(&format!(
        "add rule inet lipcast_relay out ip saddr {server_ip} udp sport {port} udp dport != {lo}-{hi} counter drop"
    ));
    nft(&format!(
        "add rule inet lipcast_relay out ip daddr {server_ip} udp dport {port} ip saddr != {relay_ip} counter drop"
    ));
    nft(&format!(
        "add rule inet lipcast_relay out ip daddr {server_ip} udp dport {port} udp sport != {lo}-{hi} counter drop"
    ));
    nft(&format!(
        "add rule inet lipcast_relay out tcp dport {tcp_port} counter drop"
    ));
}

/// A transport protocol, for [`socket_ports`] and [`cut_ports`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn as_nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The local ports of every TCP and UDP socket process `pid` holds (IPv4 and IPv6): its fds' socket inodes,
/// found in the namespace's socket tables under /proc.
pub fn socket_ports(pid: u32) -> Vec<(Proto, u16)> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for (table, proto) in [
        ("tcp", Proto::Tcp),
        ("tcp6", Proto::Tcp),
        ("udp", Proto::Udp),
        ("udp6", Proto::Udp),
    ] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (f.get(1), f.get(9)) else {
                continue;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let Some(port) = port
                && inodes.contains(*inode)
                && !ports.contains(&(proto, port))
            {
                ports.push((proto, port));
            }
        }
    }
    ports
}

/// From inside a test's namespace: every packet from or to these local ports is dropped, as when a network path
/// dies without a goodbye. Sockets opened later (a reconnection) are not affected. Returns the table's name.
pub fn cut_ports(ports: &[(Proto, u16)]) -> &'static str {
    let nft = |rule: &str| run("nft", &[rule]);
    nft("add table inet lipcast_cut");
    nft("add chain inet lipcast_cut out { type filter hook output priority 0; policy accept; }");
    for (proto, port) in ports {
        let p = proto.as_nft();
        nft(&format!(
            "add rule inet lipcast_cut out {p} sport {port} counter drop"
        ));
        nft(&format!(
            "add rule inet lipcast_cut out {p} dport {port} counter drop"
        ));
    }
    "lipcast_cut"
}
