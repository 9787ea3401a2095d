//! The real-time loop, on a thread of its own: every 40 ms one video frame and 40 ms of audio, captured
//! together so the receiver sees and hears them aligned.
//!
//! The schedule is absolute (frame `k` is due at `start + k * 40 ms`), so it never drifts; a stall longer
//! than [`REBASE_AFTER`] restarts the schedule from now and counts the frames it could not send as dropped
//! (audio and video slip together, so they stay aligned). The audio track is fed exactly one frame of audio per
//! video frame while the avatar speaks, so the engine's audio clock and the video clock are one; silence when
//! nobody speaks, trimmed or padded to hold the engine's queue at [`QUEUE_TARGET`].

use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use super::playout::{Finished, Playout, PlayoutConfig, Started, Tick};
use super::stats::StatsWindow;
use crate::animation::Animator;
use lipcast_livekit::{AudioTrack, VideoTrack};

/// A stall this long restarts the schedule instead of bursting frames to catch up.
pub const REBASE_AFTER: Duration = Duration::from_millis(200);
/// How often figures are reported.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// Consecutive capture failures after which the loop gives up.
const MAX_CAPTURE_FAILURES: u32 = 25;
/// Video frames are published this many ticks after the audio they show. The engine sends a frame's audio
/// over the following 40 ms (10 ms at a time, in 20 ms Opus packets), so on the sender's clock the audio runs
/// about one frame behind a frame captured with it; holding each frame back one tick lines them up (measured
/// in the test room on the RTCP sender clock: +40 ms without, see docs/performance.md).
const VIDEO_DELAY_FRAMES: usize = 1;
/// While nobody speaks, the loop holds the audio queued in the engine at this level, because that queue is
/// how much later the room hears a frame than it sees it. A stall the loop catches up from leaves a burst of
/// frames in the queue (the room then hears everything later), and since the loop feeds exactly real time
/// afterwards, that backlog would stay and stalls would add up over a long session; a queue run dry leaves
/// the next hiccup nothing to absorb. So each silent frame is trimmed or padded, [`TRIM_STEP`] at a time,
/// towards this level (the level the loop settles at on its own; the av_offset figures show it), and
/// speech is never touched.
const QUEUE_TARGET: Duration = Duration::from_millis(20);
/// Silence is trimmed or padded in these steps (the engine takes audio 10 ms at a time); a queue within one
/// step of the target is left alone, so capture jitter does not make the loop hunt.
const TRIM_STEP: Duration = Duration::from_millis(10);

/// How much silence to capture for one idle frame of `period` with `queued` in the engine: the frame's own
/// length, minus the whole steps the queue is above [`QUEUE_TARGET`] or plus those it is below, between
/// nothing and two frames.
fn silence_len(queued: Duration, period: Duration) -> Duration {
    let step = TRIM_STEP.as_micros() as i128;
    let off = (queued.as_micros() as i128 - QUEUE_TARGET.as_micros() as i128) / step; // towards zero
    let len = (period.as_micros() as i128 - off * step).clamp(0, 2 * period.as_micros() as i128);
    Duration::from_micros(u64::try_from(len).unwrap_or(0))
}

/// What the session's event side tells the loop.
#[derive(Debug)]
pub enum LoopInput {
    SegmentStart {
        stream_id: String,
        sample_rate: u32,
        channels: u32,
    },
    Audio {
        stream_id: String,
        track: Vec<i16>,
        features: Vec<f32>,
        arrived: Instant,
    },
    SegmentEnd {
        stream_id: String,
    },
    /// `lk.clear_buffer`.
    Clear,
}

/// What the loop reports.
#[derive(Debug)]
pub enum LoopOutput {
    /// The first video frame was captured.
    FirstFrame {
        at: Instant,
    },
    Started(Started),
    Finished(Finished),
    Stats(super::SessionStats),
    /// The loop cannot go on (capture keeps failing).
    Failed(String),
}

pub struct LoopParts {
    pub video: VideoTrack,
    pub audio: AudioTrack,
    pub animator: Box<dyn Animator>,
    pub playout: PlayoutConfig,
}

/// Starts the loop thread. It runs until `stop` fires, then drops the tracks.
pub fn spawn(
    parts: LoopParts,
    inputs: UnboundedReceiver<LoopInput>,
    outputs: UnboundedSender<LoopOutput>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("lipcast-rt".into())
        .spawn(move || {
            let _entered = span.enter();
            raise_priority();
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = outputs.send(LoopOutput::Failed(format!("loop runtime: {e}")));
                    return;
                }
            };
            rt.block_on(run(parts, inputs, outputs, stop));
        })
}

/// Asks the kernel to favour this thread (nice -10) over the process's other threads and neighbours, so a
/// busy machine delays the loop less. Needs CAP_SYS_NICE (root has it); without it the loop just runs at the
/// normal priority.
fn raise_priority() {
    let done = lipcast_sys::thread::set_current_nice(-10);
    if done.is_err() {
        tracing::debug!(
            "cannot raise the real-time loop's priority (no CAP_SYS_NICE); running at the default"
        );
    }
}

async fn run(
    parts: LoopParts,
    mut inputs: UnboundedReceiver<LoopInput>,
    outputs: UnboundedSender<LoopOutput>,
    stop: CancellationToken,
) {
    let LoopParts {
        video,
        audio,
        mut animator,
        playout,
    } = parts;
    let fps = playout.fps.max(1);
    let period = Duration::from_secs(1) / fps;
    let mut queue = Playout::new(playout);
    // Up to two frames of silence: idle frames are trimmed or padded (see QUEUE_TARGET).
    let silence = vec![0i16; 2 * playout.frame_samples()];
    // Rendered frames waiting for their audio (VIDEO_DELAY_FRAMES deep), recycled to avoid allocations.
    let mut delayed: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut i420 = Vec::new();
    let start = Instant::now();
    // Frame `index` is due at `base + (index - base_index) * period`.
    let (mut base, mut base_index) = (start, 0u64);
    let mut index = 0u64;
    let mut stats = StatsWindow::new(start);
    // When the audio queued in the engine runs out (our estimate of its playout position).
    let mut audio_end = start;
    let mut failures = 0u32;
    let mut inputs_open = true;
    let mut late_seen = animator.late_frames();
    loop {
        let due = base + period * u32::try_from(index - base_index).unwrap_or(u32::MAX);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        while inputs_open {
            match inputs.try_recv() {
                Ok(input) => apply(&mut queue, &mut *animator, &audio, input, &outputs),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => inputs_open = false,
            }
        }
        let now = Instant::now();
        if now > due + REBASE_AFTER {
            let missed = (now - due).as_micros() / period.as_micros().max(1);
            stats.dropped(u64::try_from(missed).unwrap_or(u64::MAX));
            tracing::warn!(
                late_ms = (now - due).as_millis(),
                "the loop stalled; restarting its schedule"
            );
            base = now;
            base_index = index;
        }
        let (tick, finished) = queue.next(&mut *animator, now);
        for f in finished {
            let _ = outputs.send(LoopOutput::Finished(f));
        }
        let cpu0 = crate::procstat::thread_cpu();
        // The frame's speech audio; None while nobody speaks (silence is sized once the queue is known).
        let (speech, started) = match tick {
            Tick::Speech {
                audio: samples,
                started,
                latency,
            } => {
                if animator.ready() > 0 {
                    animator.speech_frame(index).to_i420(&mut i420);
                } else {
                    animator.idle_frame(index).to_i420(&mut i420);
                }
                if let Some(l) = latency {
                    // The frame showing it goes out VIDEO_DELAY_FRAMES ticks from now.
                    stats.audio_to_mouth(l + period * VIDEO_DELAY_FRAMES as u32);
                }
                (Some(samples), started)
            }
            Tick::Idle => {
                animator.idle_frame(index).to_i420(&mut i420);
                (None, None)
            }
        };
        stats.render(crate::procstat::thread_cpu().saturating_sub(cpu0));
        let late = animator.late_frames();
        stats.late(late.saturating_sub(late_seen));
        late_seen = late;
        // Timestamps follow the schedule (not the capture jitter), in microseconds since the loop started.
        let scheduled = base + period * u32::try_from(index - base_index).unwrap_or(u32::MAX);
        let ts = i64::try_from(scheduled.duration_since(start).as_micros()).unwrap_or(i64::MAX);
        delayed.push_back(std::mem::replace(
            &mut i420,
            spare.pop().unwrap_or_default(),
        ));
        let video_ok = if index == 0 {
            // The very first frame goes out at once (it is idle: no audio to wait for), so the avatar appears
            // one frame sooner; it is published again, delayed, as usual.
            delayed.back().map_or(Ok(()), |f| video.capture_i420(f, ts))
        } else if delayed.len() > VIDEO_DELAY_FRAMES {
            let frame = delayed.pop_front().unwrap_or_default();
            let done = video.capture_i420(&frame, ts);
            spare.push(frame);
            done
        } else {
            Ok(())
        };
        let captured = Instant::now();
        // Audio queued in the engine ahead of this frame = how much later the room hears it than it sees it.
        let queued = audio_end.saturating_duration_since(captured);
        let (samples, length): (&[i16], Duration) = match &speech {
            Some(samples) => (samples, period),
            None => {
                let len = silence_len(queued, period);
                let n = u128::from(playout.out_rate) * len.as_micros() / 1_000_000;
                let n = usize::try_from(n).unwrap_or(usize::MAX).min(silence.len());
                (&silence[..n], len)
            }
        };
        let audio_ok = if samples.is_empty() {
            Ok(())
        } else {
            let done = audio.capture(samples).await;
            audio_end = audio_end.max(captured) + length;
            done
        };
        match (&video_ok, &audio_ok) {
            (Ok(()), Ok(())) => failures = 0,
            _ => {
                failures += 1;
                let why = video_ok
                    .err()
                    .map(|e| e.to_string())
                    .or(audio_ok.err().map(|e| e.to_string()))
                    .unwrap_or_default();
                tracing::warn!(error = %why, "capturing a frame failed");
                if failures >= MAX_CAPTURE_FAILURES {
                    let _ = outputs.send(LoopOutput::Failed(format!(
                        "capturing frames keeps failing: {why}"
                    )));
                    break;
                }
            }
        }
        stats.frame(captured, queued);
        if index == 0 {
            let _ = outputs.send(LoopOutput::FirstFrame { at: captured });
        }
        if let Some(s) = started {
            let _ = outputs.send(LoopOutput::Started(s));
        }
        index += 1;
        if captured.duration_since(stats.since()) >= STATS_EVERY {
            let _ = outputs.send(LoopOutput::Stats(stats.take(captured)));
        }
    }
    let _ = outputs.send(LoopOutput::Stats(stats.take(Instant::now())));
}

fn apply(
    queue: &mut Playout,
    animator: &mut dyn Animator,
    audio: &AudioTrack,
    input: LoopInput,
    outputs: &UnboundedSender<LoopOutput>,
) {
    match input {
        LoopInput::SegmentStart {
            stream_id,
            sample_rate,
            channels,
        } => {
            queue.start(&stream_id, sample_rate, channels);
        }
        LoopInput::Audio {
            stream_id,
            track,
            features,
            arrived,
        } => queue.push(&stream_id, &track, &features, arrived),
        LoopInput::SegmentEnd { stream_id } => queue.end(&stream_id),
        LoopInput::Clear => {
            // Drop what the engine still holds too, so the room stops hearing it at once.
            if let Err(e) = audio.clear() {
                tracing::warn!(error = %e, "clearing the engine's audio buffer failed");
            }
            if let Some(f) = queue.clear(animator) {
                let _ = outputs.send(LoopOutput::Finished(f));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(40);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_queue_near_the_target_gets_one_frame_of_silence() {
        for q in [11, 20, 29] {
            assert_eq!(silence_len(ms(q), FRAME), FRAME, "queued {q} ms");
        }
    }

    #[test]
    fn a_backlog_is_trimmed_away_in_steps() {
        assert_eq!(silence_len(ms(30), FRAME), ms(30));
        assert_eq!(silence_len(ms(55), FRAME), ms(10));
        assert_eq!(silence_len(ms(60), FRAME), Duration::ZERO);
        assert_eq!(silence_len(ms(300), FRAME), Duration::ZERO);
    }

    #[test]
    fn a_queue_run_dry_is_padded_back_to_the_target() {
        assert_eq!(silence_len(ms(10), FRAME), ms(50));
        assert_eq!(silence_len(Duration::ZERO, FRAME), ms(60));
    }

    #[test]
    fn trimming_a_backlog_converges_on_the_target() {
        // Frames captured on time: each tick the engine plays one frame and the loop adds `len`.
        let mut queued = ms(130);
        for _ in 0..10 {
            let len = silence_len(queued, FRAME);
            queued = (queued + len).saturating_sub(FRAME);
        }
        assert!((ms(10)..ms(30)).contains(&queued), "{queued:?}");
    }
}
