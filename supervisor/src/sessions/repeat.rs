//! A launch for a room whose avatar (the same LiveKit identity) already has a live session.
//!
//! livekit-plugins-bithuman retries a launch that failed or timed out with the same request; such a replay
//! (same room, same identity, same portrait: the same bytes, or the same URL) is answered with the live session, so a retry never starts a
//! second avatar. Any other launch for that room and identity is judged as a new one would be (a portrait
//! without a usable face still gets its 400) and then refused with `409 room_busy` naming the live task: two
//! sessions cannot publish as one participant, and ending a live call because a second request arrived would
//! surprise whoever is in it. Stop the live task first to launch a different avatar.

use std::time::{Duration, Instant};

use lipcast_proto::CheckPortraitRequest;

use super::{Launch, LaunchError, Sessions, portrait_refused};
use crate::pool::Worker;
use crate::store::Task;

impl Sessions {
    /// The answer to a launch whose room and identity have the live session `task`.
    pub(super) async fn repeated(
        &self,
        task: Task,
        launch: &Launch,
    ) -> Result<(Task, bool), LaunchError> {
        if task.portrait_sha256 == launch.portrait_key {
            tracing::info!(task_id = %task.task_id, room = %task.room_name,
                "repeated launch: returning the active task");
            return Ok((task, false));
        }
        if let Some(portrait) = &launch.portrait {
            self.check_portrait(&task, portrait.bytes.to_vec()).await?;
        }
        tracing::info!(task_id = %task.task_id, room = %task.room_name,
            "a different launch for a room with a live session: room_busy");
        Err(LaunchError::RoomBusy {
            task_id: task.task_id.clone(),
            detail: format!(
                "room {:?} already has a live avatar session ({}) for this identity with another portrait; \
                 stop it first (POST /tasks/{}/stop), or send the same request again to get it",
                task.room_name, task.task_id, task.task_id
            ),
        })
    }

    /// Has a worker judge `portrait` (face, size) without starting anything: the live session's own worker,
    /// else a warm one (given back after). `Err` only when the portrait is refused.
    async fn check_portrait(&self, task: &Task, portrait: Vec<u8>) -> Result<(), LaunchError> {
        let within = Duration::from_secs(self.inner.config.launch_timeout_seconds.max(1));
        let request = CheckPortraitRequest { portrait };
        let deadline = Instant::now() + within;
        loop {
            if let Some(worker) = self.worker_of(&task.task_id) {
                return check_on(&worker, request, within).await;
            }
            if let Some(ready) = self.inner.pool.take_idle() {
                let checked = check_on(&ready.worker, request, within).await;
                self.inner.pool.give_back(ready).await;
                return checked;
            }
            // The live session is still being handed to its worker; it gets one within the launch timeout.
            if Instant::now() >= deadline {
                tracing::warn!(task_id = %task.task_id, "no worker could check the portrait of a repeated launch");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn check_on(
    worker: &Worker,
    request: CheckPortraitRequest,
    within: Duration,
) -> Result<(), LaunchError> {
    let mut client = worker.client.clone();
    match tokio::time::timeout(within, client.check_portrait(request)).await {
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
            Err(portrait_refused(&status))
        }
        Ok(Ok(_)) => Ok(()),
        // The worker could not judge it (ended, busy, slow): the room is busy whatever the portrait.
        Ok(Err(status)) => {
            tracing::warn!(error = %status.message(), "checking a repeated launch's portrait failed");
            Ok(())
        }
        Err(_) => Ok(()),
    }
}
