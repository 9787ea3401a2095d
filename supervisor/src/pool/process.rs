//! Worker processes: spawning with the least they need, noticing their exit at once, killing their whole
//! process group, and always reaping them.
//!
//! Every worker is forked by one long-lived thread (`lipcast-spawner`): PR_SET_PDEATHSIG fires when the
//! forking *thread* exits, so a short-lived thread (like tokio's blocking pool) would kill workers at random.
//! The worker also gets the read end of a pipe (fd 3) whose write end only the supervisor holds: when the
//! supervisor dies the pipe closes and the worker exits, a second guard beside the death signal.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{oneshot, watch};

use crate::config::LogFormat;

/// The descriptor number the worker finds its guard pipe on.
pub const GUARD_FD: i32 = 3;

/// Environment variables a worker inherits; everything else (the API secret first of all) is withheld.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "ORT_DYLIB_PATH",
    "LIVEKIT_FFI_PATH",
    "LIPCAST_MODELS_DIR",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub program: PathBuf,
    pub socket: PathBuf,
    /// RLIMIT_AS in bytes (0: none).
    pub memory_limit: u64,
    /// The supervisor's log format: the worker logs in it too, so its lines can be written through.
    pub log_format: LogFormat,
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        }
    }

    pub fn is_clean(self) -> bool {
        self == Exit::Code(0)
    }

    /// A sentence for a task's `error`.
    pub fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("the worker process exited with code {c}"),
            Exit::Signal(s) => {
                let name = Signal::try_from(s)
                    .map_or_else(|_| format!("signal {s}"), |sig| sig.as_str().to_owned());
                format!("the worker process was killed by {name}")
            }
        }
    }
}

/// A running (or exited, not yet dropped) worker process.
pub struct Process {
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat: tells this process apart from a later one with the same PID.
    pub start_time: u64,
    /// `None` once reaped; signals are only sent while the child is unreaped, so its PID cannot be reused.
    child: Mutex<Option<Child>>,
    exit: watch::Receiver<Option<Exit>>,
    // Dropping the write end tells the worker the supervisor is gone; keep it for the process's life.
    _guard: OwnedFd,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Process({})", self.pid)
    }
}

struct SpawnRequest {
    spec: SpawnSpec,
    reply: oneshot::Sender<io::Result<(Child, OwnedFd, OwnedFd)>>,
}

static SPAWNER: OnceLock<Mutex<std_mpsc::Sender<SpawnRequest>>> = OnceLock::new();

fn spawner() -> io::Result<std_mpsc::Sender<SpawnRequest>> {
    if let Some(tx) = SPAWNER.get() {
        return Ok(tx.lock().unwrap_or_else(|p| p.into_inner()).clone());
    }
    let (tx, rx) = std_mpsc::channel::<SpawnRequest>();
    std::thread::Builder::new()
        .name("lipcast-spawner".into())
        .spawn(move || {
            while let Ok(req) = rx.recv() {
                let _ = req.reply.send(fork_worker(&req.spec));
            }
        })?;
    let tx = SPAWNER.get_or_init(|| Mutex::new(tx));
    Ok(tx.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Runs on the spawner thread. Returns the child, the read end of its output pipe and the write end of its
/// guard pipe.
fn fork_worker(spec: &SpawnSpec) -> io::Result<(Child, OwnedFd, OwnedFd)> {
    let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (guard_read, guard_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let out_write_err = out_write.try_clone()?;
    let mut cmd = Command::new(&spec.program);
    cmd.arg("serve")
        .arg("--socket")
        .arg(&spec.socket)
        .arg("--guard-fd")
        .arg(GUARD_FD.to_string())
        .env_clear()
        .envs(
            PASSED_ENV
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
        )
        // Workers log in the supervisor's format; it writes their lines through (see `worker_log`).
        .env(
            "LOG_FORMAT",
            match spec.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(out_write_err))
        .process_group(0);
    let parent = std::process::id();
    let guard_raw = guard_read.as_raw_fd();
    let memory_limit = spec.memory_limit;
    lipcast_sys::child::tie_to_parent(
        &mut cmd,
        lipcast_sys::child::ChildSetup {
            parent,
            guard: guard_raw,
            guard_target: GUARD_FD,
            memory_limit,
        },
    );
    let child = cmd.spawn()?;
    drop(guard_read);
    Ok((child, out_read, guard_write))
}

/// Start time (clock ticks since boot) of `pid`, from /proc/<pid>/stat; `None` if there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Process {
    /// Spawns a worker and starts watching for its exit. `on_line` receives its PID and every line it prints.
    pub async fn spawn(
        spec: SpawnSpec,
        on_line: impl Fn(u32, &str) + Send + 'static,
    ) -> io::Result<Arc<Process>> {
        let (reply, rx) = oneshot::channel();
        spawner()?
            .send(SpawnRequest { spec, reply })
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        let (child, output, guard) = rx
            .await
            .map_err(|_| io::Error::other("the spawner thread dropped the request"))??;
        let pid = child.id();
        let start = start_time(pid).unwrap_or(0);
        let (exit_tx, exit_rx) = watch::channel(None);
        let process = Arc::new(Process {
            pid,
            start_time: start,
            child: Mutex::new(Some(child)),
            exit: exit_rx,
            _guard: guard,
        });
        tokio::spawn(read_output(output, move |line| on_line(pid, line)));
        tokio::spawn(reap(process.clone(), exit_tx));
        Ok(process)
    }

    /// How it ended, once it did.
    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    pub fn is_alive(&self) -> bool {
        self.exit().is_none()
    }

    /// Waits for the exit (reaped), at most `limit`.
    pub async fn wait(&self, limit: Duration) -> Option<Exit> {
        let mut rx = self.exit.clone();
        let waited = tokio::time::timeout(limit, rx.wait_for(|e| e.is_some())).await;
        match waited {
            Ok(Ok(e)) => *e,
            _ => self.exit(),
        }
    }

    /// Sends `signal` to the worker's process group (only while it is unreaped).
    pub fn signal(&self, signal: Signal) -> bool {
        let guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return false;
        }
        let pgid = Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
        killpg(pgid, signal).is_ok()
    }

    /// SIGTERM, `grace`, then SIGKILL to the whole group; returns once reaped (or after a last bound).
    pub async fn terminate(&self, grace: Duration) -> Option<Exit> {
        if !self.is_alive() {
            return self.exit();
        }
        self.signal(Signal::SIGTERM);
        if let Some(e) = self.wait(grace).await {
            return Some(e);
        }
        self.kill().await
    }

    /// SIGKILL to the whole group, then wait for the reaper.
    pub async fn kill(&self) -> Option<Exit> {
        self.signal(Signal::SIGKILL);
        self.wait(Duration::from_secs(5)).await
    }
}

/// Waits for the child to exit (a pidfd becomes readable), reaps it and publishes how it ended.
async fn reap(process: Arc<Process>, exit_tx: watch::Sender<Option<Exit>>) {
    let pidfd = lipcast_sys::process::exit_watch(process.pid);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        match &pidfd {
            Ok(fd) => {
                if let Ok(mut ready) = fd.readable().await {
                    ready.clear_ready();
                }
            }
            Err(_) => {
                poll.tick().await;
            }
        }
        let mut guard = process.child.lock().unwrap_or_else(|p| p.into_inner());
        let Some(child) = guard.as_mut() else { return };
        match child.try_wait() {
            Ok(Some(status)) => {
                guard.take();
                drop(guard);
                let _ = exit_tx.send(Some(Exit::from_status(status)));
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(pid = process.pid, error = %e, "waiting for a worker failed");
                guard.take();
                drop(guard);
                let _ = exit_tx.send(Some(Exit::Code(-1)));
                return;
            }
        }
    }
}

async fn read_output(fd: OwnedFd, on_line: impl Fn(&str)) {
    use tokio::io::AsyncBufReadExt;
    let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut lines = tokio::io::BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        on_line(&line);
    }
}

/// The worker binary: `configured`, else `lipcast-worker` next to this executable.
pub fn worker_binary(configured: Option<&Path>) -> io::Result<PathBuf> {
    if let Some(p) = configured {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::other("the supervisor's executable has no folder"))?;
    Ok(dir.join("lipcast-worker"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_is_stable() {
        let a = start_time(std::process::id()).expect("own stat");
        assert_eq!(Some(a), start_time(std::process::id()));
        assert!(start_time(u32::MAX - 1).is_none());
    }

    #[test]
    fn exits_are_described() {
        assert_eq!(
            Exit::Signal(9).describe(),
            "the worker process was killed by SIGKILL"
        );
        assert!(Exit::Code(0).is_clean() && !Exit::Code(3).is_clean());
    }
}
