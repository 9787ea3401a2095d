//! lipcast-sys: the operating-system calls lipcast needs that no safe API offers, each behind a safe
//! function that states its contract. Together with `lipcast-livekit` (LiveKit's engine), this crate holds
//! every `unsafe` block of the workspace; the other crates `#![forbid(unsafe_code)]`.
//!
//! - [`child`]: what a worker process does between fork and exec (death signal, guard pipe, limits).
//! - [`process`]: a pidfd that tells when a child exited, and an inherited descriptor.
//! - [`thread`]: the real-time thread's scheduling priority.
//! - [`library`]: whether a shared library exports a symbol.

pub mod child;
pub mod library;
pub mod process;
pub mod thread;
