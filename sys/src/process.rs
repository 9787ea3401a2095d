//! Descriptors the kernel gives for processes.

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A descriptor that becomes readable when process `pid` exits (`pidfd_open`, Linux 5.3).
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// [`pidfd_open`] registered with tokio's reactor: readable once `pid` has exited.
pub fn exit_watch(pid: u32) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let fd = pidfd_open(pid)?;
    // SAFETY: the AsyncFd takes ownership of `fd`, so it stays open and the same descriptor for the
    // AsyncFd's whole life (the I/O-safety condition of `register_with_interest`).
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Descriptor `fd`, inherited open from the parent and never closed by this process, borrowed for the
/// process's life. Errors if it is not open.
pub fn inherited_fd(fd: RawFd) -> io::Result<BorrowedFd<'static>> {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF when `fd` is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above), and the caller's contract is that nothing closes it while the
    // process runs.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}
