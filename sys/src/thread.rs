//! Scheduling of the calling thread.

use std::io;

/// Sets the calling thread's nice value (lower runs first; below 0 needs CAP_SYS_NICE).
pub fn set_current_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let done = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
