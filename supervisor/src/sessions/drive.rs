//! Following one running session: the worker's events become task state and metrics, and whatever happens
//! (the session ends, the worker crashes or hangs, a stop), the task ends and the worker is gone and reaped.

use std::time::{Duration, Instant};

use lipcast_proto::{Event, event};
use tokio_util::sync::CancellationToken;

use super::Sessions;
use crate::pool::{Ready, Source};
use crate::store::EndReason;

/// After its session ended, a worker exits by itself; past this it is killed.
const EXIT_AFTER_END: Duration = Duration::from_secs(6);
/// After its process exited, events still buffered are read for this long.
const DRAIN: Duration = Duration::from_millis(500);
/// Beyond MAX_SESSION_SECONDS the worker enforces, the supervisor kills a session this much later.
const HARD_CAP_SLACK: Duration = Duration::from_secs(60);

const FOREVER: Duration = Duration::from_secs(3600 * 24 * 365);

/// What the worker said about the end.
struct End {
    reason: EndReason,
    error: Option<String>,
}

pub(super) async fn drive(
    sessions: Sessions,
    ready: Ready,
    task_id: String,
    source: Source,
    launched_at: Instant,
    stop: CancellationToken,
) {
    let Ready { worker, mut events } = ready;
    let metrics = sessions.metrics().clone();
    let hard_cap = tokio::time::Instant::now()
        + Duration::from_secs(sessions.inner.config.max_session_seconds)
        + HARD_CAP_SLACK;
    let mut end: Option<End> = None;
    let mut stop_sent = false;
    let mut stream_open = true;
    let started = Instant::now();
    loop {
        tokio::select! {
            msg = events.message(), if stream_open => match msg {
                Ok(Some(ev)) => {
                    if let Some(e) = apply(&sessions, &task_id, source, launched_at, ev).await {
                        end = Some(e);
                    }
                }
                Ok(None) | Err(_) => stream_open = false,
            },
            _ = stop.cancelled(), if !stop_sent => {
                stop_sent = true;
                let (w, m) = (worker.clone(), metrics.clone());
                tokio::spawn(async move { w.stop("stopped", Duration::from_secs(3), &m).await });
            }
            _ = worker.process.wait(FOREVER) => break,
            _ = tokio::time::sleep_until(hard_cap) => {
                tracing::error!("session outlived MAX_SESSION_SECONDS; killing its worker");
                worker.kill_for("hung", &metrics).await;
                end.get_or_insert(End {
                    reason: EndReason::MaxDuration,
                    error: Some("the session outlived MAX_SESSION_SECONDS and was killed".into()),
                });
                break;
            }
        }
        if end.is_some() || !stream_open {
            // The session is over (or the worker stopped talking): it must exit now.
            if worker.process.wait(EXIT_AFTER_END).await.is_none() {
                tracing::warn!(
                    pid = worker.process.pid,
                    "worker did not exit after its session; killing it"
                );
                worker.kill_for("hung", &metrics).await;
            }
            break;
        }
    }
    // Events already on the wire may tell why it ended.
    if end.is_none() && stream_open {
        let drained = tokio::time::timeout(DRAIN, async {
            while let Ok(Some(ev)) = events.message().await {
                if let Some(e) = apply(&sessions, &task_id, source, launched_at, ev).await {
                    return Some(e);
                }
            }
            None
        })
        .await;
        end = drained.ok().flatten();
    }
    let exit = worker.process.wait(Duration::from_secs(5)).await;
    // The figures go into the record before the end is announced, so a waiter sees them.
    let figures = sessions.live_stats(&task_id);
    if let Some(f) = &figures
        && let Err(e) = sessions.store().set_stats(&task_id, f).await
    {
        tracing::warn!(error = %e, "storing the session's figures failed");
    }
    let result = match end {
        Some(End { reason, error }) => sessions.finish(&task_id, reason, error.as_deref()).await,
        None => {
            let why = exit.map_or_else(
                || "the worker stopped answering".to_owned(),
                |e| e.describe(),
            );
            sessions
                .finish(&task_id, EndReason::WorkerExited, Some(&why))
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "recording the end of the task failed");
    }
    metrics
        .session_duration
        .observe(started.elapsed().as_secs_f64());
    sessions.forget(&task_id);
}

/// Applies one event; returns the end when it is `Ended`.
async fn apply(
    sessions: &Sessions,
    task_id: &str,
    source: Source,
    launched_at: Instant,
    ev: Event,
) -> Option<End> {
    let metrics = sessions.metrics();
    match ev.kind? {
        event::Kind::Joined(j) => {
            tracing::info!(
                join_ms = j.join_ms,
                codec = j.video_codec().name(),
                "worker joined the room"
            );
        }
        event::Kind::FirstFrame(f) => {
            let since_launch = launched_at.elapsed();
            let ms = i64::try_from(since_launch.as_millis()).unwrap_or(i64::MAX);
            tracing::info!(
                first_frame_ms = ms,
                worker_ms = f.since_start_ms,
                pool = source.as_str(),
                "first frame published"
            );
            metrics
                .time_to_first_frame
                .get_or_create(&crate::metrics::PoolLabel {
                    pool: source.as_str(),
                })
                .observe(since_launch.as_secs_f64());
            match sessions.store().mark_running(task_id, Some(ms)).await {
                Ok(true) => {}
                Ok(false) => tracing::debug!("task was no longer pending at its first frame"),
                Err(e) => tracing::error!(error = %e, "marking the task running failed"),
            }
        }
        event::Kind::AgentJoined(a) => tracing::info!(agent = %a.identity, "agent in the room"),
        event::Kind::SegmentStarted(s) => {
            tracing::debug!(
                segment = s.segment,
                rate = s.sample_rate,
                channels = s.num_channels,
                "speech started"
            );
        }
        event::Kind::SegmentFinished(s) => {
            tracing::debug!(
                segment = s.segment,
                position_s = s.position_s,
                interrupted = s.interrupted,
                "speech finished"
            );
        }
        event::Kind::Stats(s) => {
            sessions.add_stats(task_id, &s);
            metrics.frames.inc_by(s.frames);
            metrics.frames_dropped.inc_by(s.dropped_frames);
            for v in &s.frame_interval_ms {
                metrics.frame_interval.observe(f64::from(*v) / 1e3);
            }
            for v in &s.audio_to_mouth_ms {
                metrics.audio_to_mouth.observe(f64::from(*v) / 1e3);
            }
            for v in &s.av_offset_ms {
                metrics.av_offset.observe(f64::from(*v) / 1e3);
            }
            metrics.render_seconds.set(s.render_ms_per_frame / 1e3);
        }
        event::Kind::Ended(e) => {
            return Some(End {
                reason: e.reason().into(),
                error: (!e.error.is_empty()).then_some(e.error),
            });
        }
    }
    None
}
