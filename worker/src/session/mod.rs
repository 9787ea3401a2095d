//! One avatar session: join the room, publish `avatar_video` and `avatar_audio`, feed the agent's speech to
//! the real-time loop ([`rt_loop`]) and speak the avatar protocol, until the session ends.
//!
//! - [`ingest`]: a segment's bytes -> track-rate and 16 kHz audio.
//! - [`playout`]: the queue of segments, one frame at a time; interruption.
//! - [`rt_loop`]: the 25 FPS loop on its own thread.
//! - [`stats`]: the loop's figures.

pub mod ingest;
pub mod playout;
pub mod rt_loop;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lipcast_livekit::{
    AudioPublishOptions, ConnectOptions, LiveKitError, Room, RoomEvents, VideoCodecChoice,
    VideoPublishOptions,
};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio_util::sync::CancellationToken;

pub use lipcast_proto::EndReason;

use crate::animation::Animator;
use crate::protocol::types::RPC_CLEAR_BUFFER;
use crate::protocol::{
    AUDIO_TRACK_NAME, AvatarEvent, AvatarReceiver, PlaybackFinished, SpeechEvent, VIDEO_TRACK_NAME,
    notify,
};
use ingest::SegmentDecoder;
use playout::PlayoutConfig;
use rt_loop::{LoopInput, LoopOutput, LoopParts};

/// How long the engine may try to resume a dropped connection before the session gives up.
const RECONNECT_GIVE_UP: Duration = Duration::from_secs(12);
/// Frames of audio a segment buffers before it starts, and after running dry (see [`playout`]).
const START_FRAMES: usize = 2;
const RESUME_FRAMES: usize = 10;

/// Session settings (from the supervisor's `SessionSettings`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub idle_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
    pub agent_join_timeout: Duration,
    pub connect_timeout: Duration,
    pub video_max_bitrate: u64,
    pub video_codec: VideoCodecChoice,
    pub audio_sample_rate: u32,
    pub fps: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(600)),
            max_duration: Some(Duration::from_secs(3600)),
            agent_join_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            video_max_bitrate: 2_000_000,
            video_codec: VideoCodecChoice::H264,
            audio_sample_rate: 24_000,
            fps: 25,
        }
    }
}

/// Everything one session needs. The LiveKit token is a secret: never log it.
pub struct SessionSpec {
    pub livekit_url: String,
    pub livekit_token: String,
    pub settings: Settings,
    /// When the session was asked for (first-frame time counts from here).
    pub requested_at: Instant,
}

impl std::fmt::Debug for SessionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSpec")
            .field("livekit_url", &self.livekit_url)
            .field("livekit_token", &"<secret>")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Progress reported while a session runs (the supervisor turns these into task state and metrics).
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Connected to the room and both tracks are published.
    Joined {
        join_ms: u32,
        video_codec: VideoCodecChoice,
    },
    /// The first video frame was captured on the published track.
    FirstFrame { since_start_ms: u32 },
    /// The agent this avatar serves is in the room.
    AgentJoined { identity: String },
    SegmentStarted {
        segment: u64,
        sample_rate: u32,
        channels: u32,
    },
    SegmentFinished {
        segment: u64,
        position_s: f64,
        interrupted: bool,
    },
    /// Periodic figures (about every 5 s).
    Stats(SessionStats),
}

/// Figures over the interval since the previous `Stats` event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    pub frames: u64,
    pub dropped_frames: u64,
    /// Speech frames shown without their own model output because a generator pack's model was behind (the
    /// loop kept 25 FPS and the audio; see `generator::animator`).
    pub late_frames: u64,
    /// Intervals between consecutive captured frames, ms.
    pub frame_interval_ms: Vec<f32>,
    /// Audio arrival -> the frame showing it captured, for the first frame of each segment, ms.
    pub audio_to_mouth_ms: Vec<f32>,
    /// Audio queued in the engine ahead of each captured video frame (how much later it is heard), ms.
    pub av_offset_ms: Vec<f32>,
    pub render_ms_per_frame: f64,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// How a session ended: the contract's reason (what the task records), and a sentence for failures.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOutcome {
    pub reason: EndReason,
    /// A human sentence for failures.
    pub error: Option<String>,
}

impl SessionOutcome {
    fn ok(reason: EndReason) -> Self {
        Self {
            reason,
            error: None,
        }
    }

    fn failed(reason: EndReason, error: impl Into<String>) -> Self {
        Self {
            reason,
            error: Some(error.into()),
        }
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// A sentence for a failure to join, for the task's `error`.
fn join_error(e: &LiveKitError) -> String {
    match e {
        LiveKitError::Unauthorized(m) => format!("LiveKit refused the avatar's token: {m}"),
        LiveKitError::Unreachable(m) => format!("LiveKit server unreachable: {m}"),
        LiveKitError::Timeout { after, .. } => {
            format!("joining the LiveKit room timed out after {after:?}")
        }
        other => format!("cannot join the LiveKit room: {other}"),
    }
}

/// Runs one session to its end. Never panics on remote input; every failure becomes an outcome.
pub async fn run(
    spec: SessionSpec,
    animator: Box<dyn Animator>,
    events: UnboundedSender<SessionEvent>,
    stop: CancellationToken,
) -> SessionOutcome {
    let settings = spec.settings.clone();
    let connect = Room::connect(
        &spec.livekit_url,
        &spec.livekit_token,
        ConnectOptions {
            timeout: settings.connect_timeout,
            auto_subscribe: false,
            rpc_methods: vec![RPC_CLEAR_BUFFER.to_owned()],
        },
    );
    let (room, room_events) = tokio::select! {
        r = connect => match r {
            Ok(joined) => joined,
            Err(e) => return SessionOutcome::failed(EndReason::Error, join_error(&e)),
        },
        _ = stop.cancelled() => return SessionOutcome::ok(EndReason::Stopped),
    };
    let room = Arc::new(room);
    let outcome = match publish_and_run(
        &room,
        room_events,
        animator,
        &settings,
        &spec,
        &events,
        &stop,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(e) => SessionOutcome::failed(EndReason::Error, e),
    };
    leave(room).await;
    outcome
}

async fn leave(room: Arc<Room>) {
    // The RPC task may still hold a reference for a moment; wait briefly for it to let go.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut room = room;
    loop {
        match Arc::try_unwrap(room) {
            Ok(r) => {
                if let Err(e) = tokio::time::timeout(Duration::from_secs(5), r.disconnect()).await {
                    tracing::warn!(error = %e, "leaving the room timed out");
                }
                return;
            }
            Err(shared) if Instant::now() < deadline => {
                room = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                tracing::warn!("room still referenced at the end; dropping it");
                return;
            }
        }
    }
}

async fn publish_and_run(
    room: &Arc<Room>,
    room_events: RoomEvents,
    animator: Box<dyn Animator>,
    settings: &Settings,
    spec: &SessionSpec,
    events: &UnboundedSender<SessionEvent>,
    stop: &CancellationToken,
) -> Result<SessionOutcome, String> {
    let (width, height) = animator.size();
    // Both publications negotiate with the server; do them at once.
    let (video, audio) = tokio::join!(
        room.publish_video(
            VIDEO_TRACK_NAME,
            VideoPublishOptions {
                width,
                height,
                max_framerate: f64::from(settings.fps),
                max_bitrate: video_bitrate(settings.video_max_bitrate, width, height),
                codec: settings.video_codec,
                ..Default::default()
            }
        ),
        room.publish_audio(
            AUDIO_TRACK_NAME,
            AudioPublishOptions {
                sample_rate: settings.audio_sample_rate,
                num_channels: 1,
                queue_size_ms: 100,
            }
        )
    );
    let (video, audio) = (
        video.map_err(|e| e.to_string())?,
        audio.map_err(|e| e.to_string())?,
    );
    let _ = events.send(SessionEvent::Joined {
        join_ms: ms(room.join_time()),
        video_codec: video.codec(),
    });

    let mut receiver = AvatarReceiver::new(room, room_events);
    // Unbounded on purpose: it carries the agent's speech ahead of playout, which the loop must hold whole
    // whatever its length (an utterance may arrive in one burst), and the event side must never wait for the
    // loop: the loop waits on engine replies that the dispatcher delivers, and the dispatcher waits on this
    // side when the room's (bounded) channel is full, so a wait here could close that circle.
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let loop_stop = CancellationToken::new();
    let playout = PlayoutConfig {
        out_rate: settings.audio_sample_rate,
        fps: settings.fps,
        start_frames: START_FRAMES,
        resume_frames: RESUME_FRAMES,
    };
    let thread = rt_loop::spawn(
        LoopParts {
            video,
            audio,
            animator,
            playout,
        },
        in_rx,
        out_tx,
        loop_stop.clone(),
    )
    .map_err(|e| format!("starting the real-time loop: {e}"))?;
    let (rpc_tx, rpc_rx) = mpsc::unbounded_channel();
    let rpc = tokio::spawn(rpc_task(room.clone(), rpc_rx));

    let mut state = SessionState {
        settings: settings.clone(),
        events: events.clone(),
        loop_in: in_tx,
        rpc: rpc_tx,
        decoders: HashMap::new(),
        started_at: Instant::now(),
        last_audio: Instant::now(),
        playing: 0,
        agent_present: false,
        reconnecting_since: None,
        requested_at: spec.requested_at,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            _ = stop.cancelled() => break SessionOutcome::ok(EndReason::Stopped),
            ev = receiver.recv() => match ev {
                Some(ev) => if let Some(end) = state.avatar_event(ev) { break end },
                None => break SessionOutcome::failed(EndReason::Disconnected, "the LiveKit engine closed the room"),
            },
            out = out_rx.recv() => match out {
                Some(out) => if let Some(end) = state.loop_output(out, receiver.served_agent()) { break end },
                None => break SessionOutcome::failed(EndReason::Error, "the real-time loop stopped"),
            },
            _ = tick.tick() => if let Some(end) = state.check_deadlines(receiver.served_agent()) { break end },
        }
    };
    tracing::info!(
        reason = ?outcome.reason,
        error = outcome.error.as_deref(),
        "session ending"
    );
    loop_stop.cancel();
    if tokio::task::spawn_blocking(move || thread.join())
        .await
        .is_err()
    {
        tracing::error!("the real-time loop thread panicked");
    }
    // Forward the loop's last figures and finished segments.
    while let Ok(out) = out_rx.try_recv() {
        let _ = state.loop_output(out, receiver.served_agent());
    }
    drop(state);
    // Let queued playback_finished calls go out before leaving.
    if tokio::time::timeout(Duration::from_secs(3), rpc)
        .await
        .is_err()
    {
        tracing::warn!("avatar RPCs still pending at the end of the session");
    }
    Ok(outcome)
}

/// A call to the served agent, queued for [`rpc_task`].
enum RpcCall {
    Started {
        agent: String,
    },
    Finished {
        agent: String,
        event: PlaybackFinished,
    },
}

/// Calls the agent's RPCs in order, off the event path.
async fn rpc_task(room: Arc<Room>, mut calls: mpsc::UnboundedReceiver<RpcCall>) {
    while let Some(call) = calls.recv().await {
        match call {
            RpcCall::Started { agent } => {
                if let Err(e) = notify::playback_started(&room, &agent).await {
                    tracing::debug!(error = %e, "lk.playback_started not delivered");
                }
            }
            RpcCall::Finished { agent, event } => {
                if let Err(e) = notify::playback_finished(&room, &agent, event).await {
                    tracing::warn!(error = %e, "lk.playback_finished not delivered");
                }
            }
        }
    }
}

/// The event side of a running session.
struct SessionState {
    settings: Settings,
    events: UnboundedSender<SessionEvent>,
    loop_in: UnboundedSender<LoopInput>,
    rpc: UnboundedSender<RpcCall>,
    decoders: HashMap<String, SegmentDecoder>,
    started_at: Instant,
    /// When agent audio last arrived or a segment last finished playing: the idle clock starts there, so a
    /// long utterance sent in one burst is not "idle" while it still plays.
    last_audio: Instant,
    /// Segments started and not yet finished (no idle end while one plays).
    playing: u32,
    agent_present: bool,
    reconnecting_since: Option<Instant>,
    requested_at: Instant,
}

impl SessionState {
    fn emit(&self, ev: SessionEvent) {
        let _ = self.events.send(ev);
    }

    fn agent_joined(&mut self, identity: String) {
        if !self.agent_present {
            self.agent_present = true;
            tracing::info!(agent = %identity, "the served agent is in the room");
            self.emit(SessionEvent::AgentJoined { identity });
        }
    }

    /// Sends `input` to the real-time loop (a loop that stopped drops it).
    fn to_loop(&self, input: LoopInput) {
        let _ = self.loop_in.send(input);
    }

    fn avatar_event(&mut self, ev: AvatarEvent) -> Option<SessionOutcome> {
        match ev {
            AvatarEvent::Speech(s) => self.speech(s),
            AvatarEvent::ClearBuffer(_) => {
                tracing::info!("lk.clear_buffer: dropping queued audio");
                self.to_loop(LoopInput::Clear);
            }
            AvatarEvent::AgentJoined { identity } => self.agent_joined(identity),
            AvatarEvent::Reconnecting => {
                tracing::warn!("connection to the room lost; the engine is resuming it");
                self.reconnecting_since.get_or_insert(Instant::now());
            }
            AvatarEvent::Reconnected => {
                tracing::info!("connection to the room resumed");
                self.reconnecting_since = None;
            }
            AvatarEvent::SessionEnded(end) => {
                use crate::protocol::EndReason as Room;
                return Some(match end {
                    Room::AgentLeft { .. } => SessionOutcome::ok(EndReason::AgentLeft),
                    Room::Removed => SessionOutcome::ok(EndReason::Removed),
                    Room::RoomClosed => SessionOutcome::ok(EndReason::RoomClosed),
                    Room::Disconnected(r) => SessionOutcome::failed(
                        EndReason::Disconnected,
                        format!("disconnected from the LiveKit room ({})", r.as_str_name()),
                    ),
                });
            }
        }
        None
    }

    fn speech(&mut self, s: SpeechEvent) {
        let now = Instant::now();
        match s {
            SpeechEvent::Start(seg) => {
                self.last_audio = now;
                match SegmentDecoder::new(
                    seg.sample_rate,
                    u32::from(seg.num_channels),
                    self.settings.audio_sample_rate,
                ) {
                    Ok(d) => {
                        tracing::debug!(stream = %seg.stream_id, rate = seg.sample_rate, channels = seg.num_channels, "segment");
                        self.decoders.insert(seg.stream_id.clone(), d);
                        self.to_loop(LoopInput::SegmentStart {
                            stream_id: seg.stream_id,
                            sample_rate: seg.sample_rate,
                            channels: u32::from(seg.num_channels),
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot play this segment"),
                }
            }
            SpeechEvent::Chunk { stream_id, data } => {
                self.last_audio = now;
                if let Some(d) = self.decoders.get_mut(&stream_id) {
                    let out = d.push(&data);
                    self.to_loop(LoopInput::Audio {
                        stream_id,
                        track: out.track,
                        features: out.features,
                        arrived: now,
                    });
                }
            }
            SpeechEvent::End { stream_id, error } => {
                if let Some(e) = &error {
                    tracing::warn!(stream = %stream_id, error = %e, "segment ended early");
                }
                if let Some(mut d) = self.decoders.remove(&stream_id) {
                    let out = d.finish();
                    self.to_loop(LoopInput::Audio {
                        stream_id: stream_id.clone(),
                        track: out.track,
                        features: out.features,
                        arrived: now,
                    });
                    self.to_loop(LoopInput::SegmentEnd { stream_id });
                }
            }
            SpeechEvent::Rejected {
                stream_id,
                sender,
                reason,
            } => tracing::warn!(stream = %stream_id, %sender, %reason, "audio stream refused"),
        }
    }

    /// What the loop reports; `served` is the agent the receiver serves (the playback RPCs go to it).
    fn loop_output(&mut self, out: LoopOutput, served: Option<&str>) -> Option<SessionOutcome> {
        match out {
            LoopOutput::FirstFrame { at } => {
                let since = at.saturating_duration_since(self.requested_at);
                tracing::info!(since_request_ms = ms(since), "first frame published");
                self.emit(SessionEvent::FirstFrame {
                    since_start_ms: ms(since),
                });
            }
            LoopOutput::Started(s) => {
                self.playing += 1;
                self.emit(SessionEvent::SegmentStarted {
                    segment: s.segment,
                    sample_rate: s.sample_rate,
                    channels: s.channels,
                });
                if let Some(agent) = served {
                    let agent = agent.to_owned();
                    let _ = self.rpc.send(RpcCall::Started { agent });
                }
            }
            LoopOutput::Finished(f) => {
                self.playing = self.playing.saturating_sub(1);
                self.last_audio = Instant::now();
                tracing::info!(
                    segment = f.segment,
                    position_s = f.position_s,
                    interrupted = f.interrupted,
                    "segment finished"
                );
                self.emit(SessionEvent::SegmentFinished {
                    segment: f.segment,
                    position_s: f.position_s,
                    interrupted: f.interrupted,
                });
                if let Some(agent) = served {
                    let agent = agent.to_owned();
                    let event = PlaybackFinished::new(f.position_s, f.interrupted);
                    let _ = self.rpc.send(RpcCall::Finished { agent, event });
                }
            }
            LoopOutput::Stats(s) => self.emit(SessionEvent::Stats(s)),
            LoopOutput::Failed(e) => return Some(SessionOutcome::failed(EndReason::Error, e)),
        }
        None
    }

    /// The session's time limits; `served` is the agent the receiver expects (named in the timeout's error).
    fn check_deadlines(&mut self, served: Option<&str>) -> Option<SessionOutcome> {
        let now = Instant::now();
        if !self.agent_present
            && now.duration_since(self.started_at) >= self.settings.agent_join_timeout
        {
            let who = served.unwrap_or("an agent participant");
            return Some(SessionOutcome::failed(
                EndReason::AgentTimeout,
                format!(
                    "{who} did not join the room within {} s",
                    self.settings.agent_join_timeout.as_secs()
                ),
            ));
        }
        if let Some(idle) = self.settings.idle_timeout
            && self.playing == 0
            && now.duration_since(self.last_audio) >= idle
        {
            tracing::info!(idle_s = idle.as_secs(), "no audio for the idle timeout");
            return Some(SessionOutcome::ok(EndReason::Idle));
        }
        if let Some(max) = self.settings.max_duration
            && now.duration_since(self.started_at) >= max
        {
            return Some(SessionOutcome::ok(EndReason::MaxDuration));
        }
        if let Some(since) = self.reconnecting_since
            && now.duration_since(since) >= RECONNECT_GIVE_UP
        {
            return Some(SessionOutcome::failed(
                EndReason::Disconnected,
                format!(
                    "lost the connection to the LiveKit room and could not resume it within {} s",
                    RECONNECT_GIVE_UP.as_secs()
                ),
            ));
        }
        None
    }
}

/// Frame size the `VIDEO_MAX_BITRATE` setting is given for.
const BITRATE_REFERENCE_PIXELS: u64 = 512 * 512;

/// The bitrate cap of a `width` x `height` avatar video: the setting (given for a 512x512 frame) scaled with the
/// frame's pixel count, between a quarter and twice the setting, so a 576x720 portrait is not starved and a
/// 256x256 one does not waste the link.
pub fn video_bitrate(setting: u64, width: u32, height: u32) -> u64 {
    let pixels = u64::from(width) * u64::from(height);
    let scaled = setting.saturating_mul(pixels) / BITRATE_REFERENCE_PIXELS;
    scaled.clamp(setting / 4, setting.saturating_mul(2))
}

#[cfg(test)]
mod bitrate_tests {
    #[test]
    fn the_bitrate_follows_the_frame_size() {
        assert_eq!(super::video_bitrate(2_000_000, 512, 512), 2_000_000);
        assert_eq!(super::video_bitrate(2_000_000, 576, 720), 3_164_062);
        assert_eq!(super::video_bitrate(2_000_000, 720, 720), 3_955_078);
        assert_eq!(super::video_bitrate(2_000_000, 1440, 1440), 4_000_000);
        assert_eq!(super::video_bitrate(2_000_000, 128, 128), 500_000);
    }
}
