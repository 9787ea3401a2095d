//! The README's Quick start command, read from the README itself and run verbatim in a copy of the tree
//! whose target folder lacks the worker binary (as on a fresh clone, where nothing is built yet), until
//! `/ready` answers 200: the command must build and start everything the server needs.
//!
//! The copy reuses the compiled dependencies of this tree's `target/release` (a fresh clone would build them
//! too, only slower) and its `.vendor` (what `scripts/setup.sh` fetched for this run already); the
//! workspace's own crates are built again in the copy, the worker binary among them.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lipcast_e2e::paths;

/// The first command of the README's "Quick start" section (the first line of its first `sh` block).
fn readme_command() -> String {
    let readme = std::fs::read_to_string(paths::workspace().join("README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    let section = readme
        .split("\n## Quick start")
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no \"## Quick start\" section"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("the Quick start section has no ```sh block"));
    block
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("the Quick start block is empty"))
        .to_owned()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tree as a clone would have it: every tracked file and every new file not ignored.
fn copy_tree(to: &Path) {
    let root = paths::workspace();
    let files = run(Command::new("git").current_dir(&root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for rel in files.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        std::fs::copy(&from, &dest).unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
    std::os::unix::fs::symlink(root.join(".vendor"), to.join(".vendor"))
        .unwrap_or_else(|e| panic!("linking .vendor: {e}"));
}

/// `target/release` of this tree without its binaries: the compiled dependencies only.
fn copy_dependencies(to: &Path) {
    let release = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace().join("target"))
        .join("release");
    let dest = to.join("target/release");
    std::fs::create_dir_all(&dest).unwrap_or_else(|e| panic!("{e}"));
    for dir in ["deps", "build", ".fingerprint"] {
        run(Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(release.join(dir))
            .arg(&dest));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

#[test]
fn readme_quick_start_builds_and_serves_on_a_fresh_tree() {
    let command = readme_command();
    let tree = std::env::temp_dir().join(format!("lipcast-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tree);
    copy_tree(&tree);
    copy_dependencies(&tree);
    let worker = tree.join("target/release/lipcast-worker");
    assert!(
        !worker.exists(),
        "the copy must start without the worker binary"
    );

    let port = free_port();
    let started = Instant::now();
    // Verbatim through a shell, at low priority (it builds on a 2-core machine), in its own process group.
    let mut child = Command::new("nice")
        .args(["-n", "19", "bash", "-c", &command])
        .current_dir(&tree)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DEVICE", "cpu")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    for out in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    let tail = |log: &Mutex<Vec<String>>| {
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        log[log.len().saturating_sub(40)..].join("\n")
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let within = Duration::from_secs(20 * 60);
    let ready = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{command:?} exited ({status}) before /ready answered 200:\n{}",
                tail(&log)
            );
        }
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/ready")).send()
            && r.status().as_u16() == 200
        {
            break started.elapsed();
        }
        if started.elapsed() > within {
            break within;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    assert!(
        ready < within,
        "{command:?}: /ready not 200 within {within:?}:\n{}",
        tail(&log)
    );
    assert!(worker.is_file(), "the command built the worker binary");
    eprintln!(
        "{command:?}: /ready 200 after {:.0} s (build included)",
        ready.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&tree);
}
