//! The avatar's side of a room (livekit-agents `voice/avatar/_datastream_io.py`, receiving end): which agent
//! it serves, that agent's speech as ordered segments, its `lk.clear_buffer`, and the room events that end
//! the session.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use lipcast_livekit::{
    DisconnectReason, IncomingByteStream, Participant, ParticipantKind, RPC_APPLICATION_ERROR,
    RPC_UNSUPPORTED_METHOD, ReaderId, Room, RoomEvent, RoomEvents, RpcFailure, RpcInvocation,
};

use super::types::{
    AUDIO_STREAM_TOPIC, ClearBufferRequest, EndReason, PUBLISH_ON_BEHALF, RPC_CLEAR_BUFFER,
    STREAM_IDLE_TIMEOUT, SegmentStart, SpeechEvent, audio_format,
};

/// How long a superseded segment may still deliver its tail before it is ended.
const SUPERSEDED_GRACE: Duration = Duration::from_millis(500);
/// How often unfinished segments are checked for idleness and supersession.
const EXPIRY_TICK: Duration = Duration::from_millis(250);

/// What the avatar protocol asks of the session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum AvatarEvent {
    /// The agent this avatar serves is in the room (first event if it was there at join).
    AgentJoined {
        identity: String,
    },
    /// The engine lost the connection and tries to resume it.
    Reconnecting,
    Reconnected,
    /// The served agent's speech.
    Speech(SpeechEvent),
    /// The served agent asked to drop queued audio (already answered `"ok"`).
    ClearBuffer(ClearBufferRequest),
    /// Last event: the session is over.
    SessionEnded(EndReason),
}

/// An `lk.audio_stream` segment being read.
struct OpenSegment {
    stream_id: String,
    last_activity: Instant,
    /// Set when a newer segment started: end this one if its trailer has not come by then.
    superseded_at: Option<Instant>,
    /// Events held back until the segments before this one have ended.
    queued: Vec<SpeechEvent>,
    ended: bool,
}

/// Turns a room's events into [`AvatarEvent`]s. Lives on the session's task: no thread or channel of its own.
pub struct AvatarReceiver {
    events: RoomEvents,
    /// `lk.publish_on_behalf`, else the first participant of kind AGENT.
    served_agent: Option<String>,
    /// The served agent has been in the room at some point.
    agent_seen: bool,
    /// The engine is rebuilding a lost connection.
    reconnecting: bool,
    segments: HashMap<ReaderId, OpenSegment>,
    /// Segments in arrival order; only the front one's events are emitted, so segments never interleave
    /// even when the engine reports a new stream before the previous one's last chunks.
    order: VecDeque<ReaderId>,
    out: VecDeque<AvatarEvent>,
    tick: tokio::time::Interval,
    ended: bool,
}

impl AvatarReceiver {
    /// Starts serving `room` (whose events are `events`).
    pub fn new(room: &Room, events: RoomEvents) -> Self {
        let served_agent =
            served_agent_at_join(room.local_attributes(), room.participants_at_join());
        let agent_seen = served_agent
            .as_ref()
            .is_some_and(|a| room.participants_at_join().iter().any(|p| &p.identity == a));
        let mut out = VecDeque::new();
        if let (true, Some(identity)) = (agent_seen, &served_agent) {
            out.push_back(AvatarEvent::AgentJoined {
                identity: identity.clone(),
            });
        }
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            events,
            served_agent,
            agent_seen,
            reconnecting: false,
            segments: HashMap::new(),
            order: VecDeque::new(),
            out,
            tick,
            ended: false,
        }
    }

    /// The agent this avatar serves, once known.
    pub fn served_agent(&self) -> Option<&str> {
        self.served_agent.as_deref()
    }

    /// The next event, or `None` after [`AvatarEvent::SessionEnded`]. Cancel-safe.
    pub async fn recv(&mut self) -> Option<AvatarEvent> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Some(ev);
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.room_event(ev),
                    None => self.end(EndReason::Disconnected(DisconnectReason::UnknownReason)),
                },
                _ = self.tick.tick() => self.expire_segments(),
            }
        }
    }

    fn emit(&mut self, ev: AvatarEvent) {
        self.out.push_back(ev);
    }

    fn end(&mut self, reason: EndReason) {
        self.emit(AvatarEvent::SessionEnded(reason));
        self.ended = true;
    }

    fn room_event(&mut self, ev: RoomEvent) {
        match ev {
            RoomEvent::ParticipantJoined(p) => self.participant_joined(p),
            RoomEvent::ParticipantLeft { identity, reason } => {
                // While the engine rebuilds a lost connection it drops every remote participant and adds back
                // those still there; only a departure outside a reconnection (or an agent missing after it)
                // ends the session.
                if !self.reconnecting && self.served_agent.as_deref() == Some(identity.as_str()) {
                    self.end(EndReason::AgentLeft { identity, reason });
                }
            }
            RoomEvent::Reconnecting => {
                self.reconnecting = true;
                self.emit(AvatarEvent::Reconnecting);
            }
            RoomEvent::Reconnected => {
                self.reconnecting = false;
                self.emit(AvatarEvent::Reconnected);
                if let Some(agent) = self.served_agent.clone()
                    && self.agent_seen
                    && !self.events.participants().any(|p| p.identity == agent)
                {
                    self.end(EndReason::AgentLeft {
                        identity: agent,
                        reason: DisconnectReason::UnknownReason,
                    });
                }
            }
            RoomEvent::ByteStreamOpened(stream) => self.stream_opened(stream),
            RoomEvent::ByteStreamChunk { reader, data } => {
                if let Some(s) = self.segments.get_mut(&reader).filter(|s| !s.ended) {
                    s.last_activity = Instant::now();
                    let stream_id = s.stream_id.clone();
                    self.emit_speech(reader, SpeechEvent::Chunk { stream_id, data });
                }
            }
            RoomEvent::ByteStreamEnded { reader, error } => self.end_segment(reader, error),
            RoomEvent::RpcInvocation(inv) => self.rpc_invocation(inv),
            RoomEvent::Disconnected(reason) => self.end(reason.into()),
        }
    }

    fn participant_joined(&mut self, p: Participant) {
        if self.served_agent.is_none() && p.kind == ParticipantKind::Agent {
            self.served_agent = Some(p.identity.clone());
        }
        if self.served_agent.as_deref() == Some(p.identity.as_str()) {
            self.agent_seen = true;
            self.emit(AvatarEvent::AgentJoined {
                identity: p.identity,
            });
        }
    }

    fn stream_opened(&mut self, stream: IncomingByteStream) {
        if stream.topic != AUDIO_STREAM_TOPIC {
            return; // other streams are dropped unread
        }
        let reject = |stream: &IncomingByteStream, reason: String| {
            AvatarEvent::Speech(SpeechEvent::Rejected {
                stream_id: stream.stream_id.clone(),
                sender: stream.sender.clone(),
                reason,
            })
        };
        if let Some(served) = &self.served_agent
            && *served != stream.sender
        {
            let reason = format!("sender {} is not the served agent {served}", stream.sender);
            self.emit(reject(&stream, reason));
            return;
        }
        let (sample_rate, num_channels) = match audio_format(&stream.attributes) {
            Ok(f) => f,
            Err(reason) => {
                tracing::warn!(stream = %stream.stream_id, sender = %stream.sender, %reason, "dropping audio stream");
                self.emit(reject(&stream, reason));
                return;
            }
        };
        let start = SegmentStart {
            stream_id: stream.stream_id.clone(),
            sender: stream.sender.clone(),
            sample_rate,
            num_channels,
            mime_type: stream.mime_type.clone(),
            attributes: stream.attributes.clone(),
        };
        let reader = match self.events.read(stream) {
            Ok(r) => r,
            Err(e) => {
                self.emit(AvatarEvent::Speech(SpeechEvent::Rejected {
                    stream_id: start.stream_id,
                    sender: start.sender,
                    reason: e.to_string(),
                }));
                return;
            }
        };
        // A new segment while one is open means the open one was abandoned (the agents' receiver ends it).
        // The engine may still deliver its last chunks and trailer just after this header: allow a grace.
        let now = Instant::now();
        for s in self.segments.values_mut().filter(|s| !s.ended) {
            s.superseded_at.get_or_insert(now + SUPERSEDED_GRACE);
        }
        self.segments.insert(
            reader,
            OpenSegment {
                stream_id: start.stream_id.clone(),
                last_activity: now,
                superseded_at: None,
                queued: Vec::new(),
                ended: false,
            },
        );
        self.order.push_back(reader);
        self.emit_speech(reader, SpeechEvent::Start(start));
    }

    /// Emit `ev` of segment `reader` now if it is the current one, else hold it back.
    fn emit_speech(&mut self, reader: ReaderId, ev: SpeechEvent) {
        if self.order.front() == Some(&reader) {
            self.emit(AvatarEvent::Speech(ev));
        } else if let Some(s) = self.segments.get_mut(&reader) {
            s.queued.push(ev);
        }
    }

    /// Stop reading segment `reader`, end it, and release the segments held behind it.
    fn end_segment(&mut self, reader: ReaderId, error: Option<String>) {
        self.events.stop_reading(reader);
        let Some(s) = self.segments.get_mut(&reader).filter(|s| !s.ended) else {
            return;
        };
        s.ended = true;
        let stream_id = s.stream_id.clone();
        self.emit_speech(reader, SpeechEvent::End { stream_id, error });
        // Retire ended segments at the front; flush what the next ones held back.
        while let Some(&front) = self.order.front() {
            let Some(s) = self.segments.get_mut(&front) else {
                self.order.pop_front();
                continue;
            };
            let queued = std::mem::take(&mut s.queued);
            let ended = s.ended;
            for ev in queued {
                self.emit(AvatarEvent::Speech(ev));
            }
            if !ended {
                break;
            }
            self.order.pop_front();
            self.segments.remove(&front);
        }
    }

    /// End segments silent for [`STREAM_IDLE_TIMEOUT`] or superseded by a newer one past the grace.
    fn expire_segments(&mut self) {
        let now = Instant::now();
        let expired: Vec<(ReaderId, &'static str)> = self
            .segments
            .iter()
            .filter(|(_, s)| !s.ended)
            .filter_map(|(r, s)| {
                if s.superseded_at.is_some_and(|t| now >= t) {
                    Some((*r, "superseded by a new segment"))
                } else if s.last_activity.elapsed() >= STREAM_IDLE_TIMEOUT {
                    Some((*r, "idle timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (reader, why) in expired {
            tracing::warn!(?reader, why, "ending an unfinished audio segment");
            self.end_segment(reader, Some(why.into()));
        }
    }

    fn rpc_invocation(&mut self, inv: RpcInvocation) {
        let answer = if inv.method != RPC_CLEAR_BUFFER {
            Err(RpcFailure {
                code: RPC_UNSUPPORTED_METHOD,
                message: "unsupported method".into(),
            })
        } else if self.served_agent.as_deref() == Some(inv.caller.as_str()) {
            self.emit(AvatarEvent::ClearBuffer(ClearBufferRequest {
                caller: inv.caller.clone(),
                payload: inv.payload.clone(),
            }));
            Ok("ok".to_owned())
        } else {
            tracing::warn!(caller = %inv.caller, served = ?self.served_agent, "refusing lk.clear_buffer from a participant that is not the served agent");
            Err(RpcFailure {
                code: RPC_APPLICATION_ERROR,
                message: "caller is not the agent this avatar serves".into(),
            })
        };
        if let Err(e) = inv.respond(answer) {
            tracing::warn!(error = %e, "answering an RPC failed");
        }
    }
}

/// The agent an avatar serves at join: `lk.publish_on_behalf` in its own attributes, else the first agent.
fn served_agent_at_join(
    local_attributes: &HashMap<String, String>,
    remotes: &[Participant],
) -> Option<String> {
    if let Some(id) = local_attributes
        .get(PUBLISH_ON_BEHALF)
        .filter(|s| !s.is_empty())
    {
        return Some(id.clone());
    }
    remotes
        .iter()
        .filter(|p| p.kind == ParticipantKind::Agent)
        .min_by_key(|p| p.joined_at)
        .map(|p| p.identity.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(identity: &str, kind: ParticipantKind, joined_at: i64) -> Participant {
        Participant {
            identity: identity.into(),
            name: String::new(),
            sid: String::new(),
            kind,
            attributes: HashMap::new(),
            joined_at,
        }
    }

    #[test]
    fn served_agent_prefers_publish_on_behalf() {
        let attrs = HashMap::from([(PUBLISH_ON_BEHALF.to_string(), "agent-b".to_string())]);
        let remotes = [p("agent-a", ParticipantKind::Agent, 1)];
        assert_eq!(
            served_agent_at_join(&attrs, &remotes).as_deref(),
            Some("agent-b")
        );
    }

    #[test]
    fn served_agent_falls_back_to_first_agent() {
        let remotes = [
            p("user", ParticipantKind::Standard, 0),
            p("agent-late", ParticipantKind::Agent, 5),
            p("agent-early", ParticipantKind::Agent, 2),
        ];
        assert_eq!(
            served_agent_at_join(&HashMap::new(), &remotes).as_deref(),
            Some("agent-early")
        );
        assert_eq!(served_agent_at_join(&HashMap::new(), &remotes[..1]), None);
    }
}
