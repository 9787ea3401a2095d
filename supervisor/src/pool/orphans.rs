//! Ending the workers a previous run of the supervisor left behind (after `kill -9` of the supervisor, say).
//! PR_SET_PDEATHSIG and the guard pipe normally end them already; this is the last line, and it checks each
//! PID's start time so a process that merely reuses a recorded PID is never touched.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::process::start_time;
use crate::store::{StoreError, TaskStore};

/// Kills every recorded worker that is still the same process, then forgets them all. Returns how many were
/// killed.
pub async fn end_orphans(store: &TaskStore) -> Result<usize, StoreError> {
    let rows = store.workers().await?;
    let mut killed = Vec::new();
    for row in &rows {
        let (Ok(pid), Ok(recorded)) = (u32::try_from(row.pid), u64::try_from(row.start_time))
        else {
            continue;
        };
        if start_time(pid) != Some(recorded) {
            continue; // gone, or another process now has that PID
        }
        let raw = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        tracing::warn!(
            pid,
            task_id = row.task_id.as_deref().unwrap_or("-"),
            "ending a worker left by a previous run"
        );
        let _ = killpg(raw, Signal::SIGKILL);
        let _ = kill(raw, Signal::SIGKILL);
        killed.push((pid, recorded));
    }
    // They are not our children, so their parent (init or a subreaper) reaps them; wait until they are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && killed.iter().any(|(pid, st)| start_time(*pid) == Some(*st))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for row in &rows {
        let _ = std::fs::remove_file(&row.socket);
    }
    store.clear_workers().await?;
    Ok(killed.len())
}
