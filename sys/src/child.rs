//! What a worker process does between `fork` and `exec`.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// How the child is tied to the supervisor.
#[derive(Debug, Clone, Copy)]
pub struct ChildSetup {
    /// The supervisor's pid: if the child's parent is another process by the time the death signal is set,
    /// the supervisor is already gone and the child exits (status 70).
    pub parent: u32,
    /// The read end of the guard pipe, and the descriptor number the child finds it at (kept open across
    /// exec; every higher descriptor is closed on exec).
    pub guard: RawFd,
    pub guard_target: RawFd,
    /// Address-space limit in bytes (`RLIMIT_AS`); 0 for none.
    pub memory_limit: u64,
}

/// Makes `cmd`'s child get SIGKILL when the supervisor thread that forked it dies (`PR_SET_PDEATHSIG`), find
/// the guard pipe at `guard_target`, inherit no other descriptor, and run under the memory limit.
pub fn tie_to_parent(cmd: &mut Command, setup: ChildSetup) {
    let ChildSetup {
        parent,
        guard,
        guard_target,
        memory_limit,
    } = setup;
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe calls
    // (prctl, getppid, dup2, fcntl, syscall, setrlimit, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The supervisor may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() as u32 != parent {
                libc::_exit(70);
            }
            if guard == guard_target {
                let flags = libc::fcntl(guard_target, libc::F_GETFD);
                libc::fcntl(guard_target, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(guard, guard_target) < 0 {
                return Err(io::Error::last_os_error());
            }
            // Nothing else leaks into the worker: every other descriptor closes on exec
            // (close_range with CLOSE_RANGE_CLOEXEC; older kernels rely on std's O_CLOEXEC everywhere).
            libc::syscall(
                libc::SYS_close_range,
                guard_target + 1,
                u32::MAX,
                4, /* CLOSE_RANGE_CLOEXEC */
            );
            if memory_limit > 0 {
                let lim = libc::rlimit {
                    rlim_cur: memory_limit,
                    rlim_max: memory_limit,
                };
                libc::setrlimit(libc::RLIMIT_AS, &lim);
            }
            Ok(())
        });
    }
}
