//! The README's Quick start command, read from the README itself and run verbatim, with a target folder that
//! lacks the worker binary (as on a fresh clone, where nothing is built yet), until `/ready` answers 200: the
//! command must build and start everything the server needs.
//!
//! The target folder is a copy of this tree's `target/release` without the worker binary (`CARGO_TARGET_DIR`
//! points the command at it): the compiled dependencies are reused, so the test costs a link, not the
//! build a fresh clone pays once; `scripts/setup.sh` finds what this run fetched already.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lipcast_e2e::{output, paths, supervisor};

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

/// `target/release` of this tree, without the worker binary, in `to/release`.
fn copy_target_without_worker(to: &Path) {
    let release = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace().join("target"))
        .join("release");
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let out = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&release)
        .arg(to)
        .output()
        .unwrap_or_else(|e| panic!("cp: {e}"));
    assert!(
        out.status.success(),
        "copying {}: {}",
        release.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["lipcast-worker", "lipcast-worker.d"] {
        let _ = std::fs::remove_file(to.join("release").join(name));
    }
}

#[test]
fn readme_quick_start_builds_and_serves_on_a_fresh_tree() {
    let command = readme_command();
    let target = std::env::temp_dir().join(format!("lipcast-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&target);
    copy_target_without_worker(&target);
    let worker = target.join("release/lipcast-worker");
    assert!(
        !worker.exists(),
        "the target must start without the worker binary"
    );

    let port = supervisor::free_port();
    let started = Instant::now();
    // Verbatim through a shell, at low priority (it links on a 2-core machine), in its own process group.
    // DATA_DIR keeps the tree's ./data out of it.
    let mut cmd = Command::new("nice");
    // A user's shell, not the test runner's: none of the variables cargo and nextest set for a test
    // (CARGO_*, NEXTEST_*, their LD_LIBRARY_PATH) reach the command.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let runner_set = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("NEXTEST")
            || key.starts_with("__NEXTEST")
            || key.starts_with("RUST_TEST")
            || key == "LD_LIBRARY_PATH";
        if runner_set {
            cmd.env_remove(key.as_ref());
        }
    }
    let mut child = cmd
        .args(["-n", "19", "bash", "-c", &command])
        .current_dir(paths::workspace())
        .env("CARGO_TARGET_DIR", &target)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DEVICE", "cpu")
        .env("DATA_DIR", target.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    let log = output::capture(&mut child, |_| {});
    let tail = |log: &Mutex<Vec<String>>| {
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        log[log.len().saturating_sub(40)..].join("\n")
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let within = Duration::from_secs(10 * 60);
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
    let compiled = log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| l.trim_start().starts_with("Compiling"))
        .count();
    eprintln!(
        "{command:?}: /ready 200 after {:.0} s ({compiled} crates compiled)",
        ready.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&target);
}
