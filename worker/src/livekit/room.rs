//! Joining a room, its participants, and the signals that end a session.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::dispatch::{Engine, RoutedEvent, engine};
use super::error::LiveKitError;
use super::handle::OwnedHandle;
use super::proto::{
    self, ByteStreamReaderReadIncrementalRequest, ConnectRequest, DisconnectRequest,
    ReadyForRoomEventRequest, RegisterRpcMethodRequest, RpcError, RpcMethodInvocationEvent,
    RpcMethodInvocationResponseRequest, byte_stream_reader_event, connect_callback, ffi_event,
    ffi_request, ffi_response, room_event,
};
use super::rpc::{ClearBufferRequest, RPC_APPLICATION_ERROR, RPC_CLEAR_BUFFER};
use super::streams::{
    AUDIO_STREAM_TOPIC, STREAM_IDLE_TIMEOUT, SegmentStart, SpeechEvent, audio_format,
};

/// Why the server or the engine disconnected a participant (LiveKit's `DisconnectReason`).
pub type DisconnectReason = proto::DisconnectReason;

/// How long a superseded segment may still deliver its tail before it is ended.
const SUPERSEDED_GRACE: Duration = Duration::from_millis(500);

/// The participant attribute naming the agent an avatar serves.
pub const PUBLISH_ON_BEHALF: &str = "lk.publish_on_behalf";

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Overall limit for joining (signalling + ICE).
    pub timeout: Duration,
    /// Subscribe to other participants' tracks (the avatar does not need them).
    pub auto_subscribe: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            auto_subscribe: false,
        }
    }
}

/// Kind of a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantKind {
    Standard,
    Ingress,
    Egress,
    Sip,
    Agent,
    Connector,
    Bridge,
    Other(i32),
}

impl From<i32> for ParticipantKind {
    fn from(v: i32) -> Self {
        use proto::ParticipantKind as K;
        match K::try_from(v) {
            Ok(K::Standard) => Self::Standard,
            Ok(K::Ingress) => Self::Ingress,
            Ok(K::Egress) => Self::Egress,
            Ok(K::Sip) => Self::Sip,
            Ok(K::Agent) => Self::Agent,
            Ok(K::Connector) => Self::Connector,
            Ok(K::Bridge) => Self::Bridge,
            Err(_) => Self::Other(v),
        }
    }
}

/// A participant as the room last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub identity: String,
    pub name: String,
    pub sid: String,
    pub kind: ParticipantKind,
    pub attributes: HashMap<String, String>,
    pub joined_at: i64,
}

impl From<&proto::ParticipantInfo> for Participant {
    fn from(p: &proto::ParticipantInfo) -> Self {
        Self {
            identity: p.identity.clone(),
            name: p.name.clone(),
            sid: p.sid.clone(),
            kind: p.kind.into(),
            attributes: p.attributes.clone(),
            joined_at: p.joined_at,
        }
    }
}

/// Why the session is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The agent the avatar serves left the room.
    AgentLeft {
        identity: String,
        reason: DisconnectReason,
    },
    /// The avatar was removed from the room (RoomService `RemoveParticipant`).
    Removed,
    /// The room was closed or deleted.
    RoomClosed,
    /// Any other disconnection (server shutdown, signal loss, duplicate identity...).
    Disconnected(DisconnectReason),
}

/// What happens in the room, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    ParticipantJoined {
        participant: Participant,
        is_served_agent: bool,
    },
    ParticipantLeft {
        identity: String,
        reason: DisconnectReason,
    },
    /// The engine lost the connection and tries to resume.
    Reconnecting,
    Reconnected,
    /// Speech on `lk.audio_stream`.
    Speech(SpeechEvent),
    /// The served agent asked to drop queued audio (already answered `"ok"`).
    ClearBuffer(ClearBufferRequest),
    /// Last event: the session is over.
    SessionEnded(EndReason),
}

/// The room's events; ends after [`RoomEvent::SessionEnded`] or when the [`Room`] is dropped.
pub struct RoomEvents {
    rx: mpsc::UnboundedReceiver<RoomEvent>,
}

impl RoomEvents {
    /// The next event, or `None` when the session is over.
    pub async fn recv(&mut self) -> Option<RoomEvent> {
        self.rx.recv().await
    }
}

/// A joined room. Dropping it leaves the room.
pub struct Room {
    inner: Arc<RoomInner>,
}

struct RoomInner {
    engine: &'static Engine,
    // Field order matters: the local participant is released before the room.
    local: OwnedHandle,
    handle: OwnedHandle,
    name: String,
    sid: String,
    local_identity: String,
    local_attributes: HashMap<String, String>,
    served_agent: Arc<Mutex<Option<String>>>,
    remote_at_join: Vec<Participant>,
    join_time: Duration,
    _stop_task: oneshot::Sender<()>,
}

impl Drop for RoomInner {
    fn drop(&mut self) {
        self.engine.remove_route(self.handle.id());
        self.engine.remove_route(self.local.id());
    }
}

impl Room {
    /// Join the room at `url` (ws:// or wss://) with `token`.
    ///
    /// Errors: [`LiveKitError::Unauthorized`] for a refused token, [`LiveKitError::Unreachable`] when the
    /// server cannot be reached, [`LiveKitError::Timeout`] past `options.timeout`.
    pub async fn connect(
        url: &str,
        token: &str,
        options: ConnectOptions,
    ) -> Result<(Room, RoomEvents), LiveKitError> {
        let engine = engine()?;
        let started = Instant::now();
        let timeout_ms = u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX);
        let resp = engine.request(ffi_request::Message::Connect(ConnectRequest {
            url: url.to_owned(),
            token: token.to_owned(),
            options: proto::RoomOptions {
                auto_subscribe: Some(options.auto_subscribe),
                adaptive_stream: Some(false),
                dynacast: Some(false),
                join_retries: Some(0),
                connect_timeout_ms: Some(timeout_ms),
                ..Default::default()
            },
            ..Default::default()
        }))?;
        let ffi_response::Message::Connect(r) = resp else {
            return Err(LiveKitError::UnexpectedResponse { request: "connect" });
        };
        let reply = match engine
            .wait_reply(
                r.async_id,
                "connect",
                options.timeout + Duration::from_secs(2),
            )
            .await
        {
            Err(LiveKitError::Timeout { .. }) => {
                return Err(LiveKitError::Timeout {
                    what: "joining the LiveKit room",
                    after: options.timeout,
                });
            }
            other => other?,
        };
        let ffi_event::Message::Connect(cb) = reply else {
            return Err(LiveKitError::UnexpectedResponse { request: "connect" });
        };
        let result = match cb.message {
            Some(connect_callback::Message::Result(r)) => r,
            Some(connect_callback::Message::Error(e)) => {
                return Err(LiveKitError::from_connect_error(e));
            }
            None => return Err(LiveKitError::Connect("empty connect callback".into())),
        };
        let join_time = started.elapsed();
        let handle = engine.own(result.room.handle.id);
        let local = engine.own(result.local_participant.handle.id);
        let local_info = result.local_participant.info;
        let mut participants = HashMap::new();
        let mut remote_at_join = Vec::new();
        for p in result.participants {
            for publication in p.publications {
                drop(engine.own(publication.handle.id));
            }
            let info = Participant::from(&p.participant.info);
            remote_at_join.push(info.clone());
            participants.insert(
                info.identity.clone(),
                (info, engine.own(p.participant.handle.id)),
            );
        }
        let served = served_agent_at_join(&local_info.attributes, &remote_at_join);
        let served_agent = Arc::new(Mutex::new(served));

        let (ffi_tx, ffi_rx) = mpsc::unbounded_channel();
        engine.add_route(handle.id(), ffi_tx.clone());
        engine.add_route(local.id(), ffi_tx.clone());
        engine.request(ffi_request::Message::RegisterRpcMethod(
            RegisterRpcMethodRequest {
                local_participant_handle: local.id(),
                method: RPC_CLEAR_BUFFER.into(),
            },
        ))?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let agent_seen = served_agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|a| participants.contains_key(a));
        let task = RoomTask {
            engine,
            local_handle: local.id(),
            served_agent: served_agent.clone(),
            participants,
            readers: HashMap::new(),
            order: VecDeque::new(),
            ffi_tx,
            events: events_tx,
            reconnecting: false,
            agent_seen,
        };
        tokio::spawn(task.run(ffi_rx, stop_rx));
        let inner = RoomInner {
            engine,
            local,
            handle,
            name: result.room.info.name,
            sid: result.room.info.sid.unwrap_or_default(),
            local_identity: local_info.identity,
            local_attributes: local_info.attributes,
            served_agent,
            remote_at_join,
            join_time,
            _stop_task: stop_tx,
        };
        // On error `inner` drops here: routes removed, handles released, the task stopped.
        engine.request(ffi_request::Message::ReadyForRoomEvent(
            ReadyForRoomEventRequest {
                room_handle: inner.handle.id(),
            },
        ))?;
        tracing::info!(room = %inner.name, identity = %inner.local_identity, ?join_time, "joined LiveKit room");
        Ok((
            Room {
                inner: Arc::new(inner),
            },
            RoomEvents { rx: events_rx },
        ))
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn sid(&self) -> &str {
        &self.inner.sid
    }

    pub fn local_identity(&self) -> &str {
        &self.inner.local_identity
    }

    /// The avatar's own attributes (from its token).
    pub fn local_attributes(&self) -> &HashMap<String, String> {
        &self.inner.local_attributes
    }

    /// The other participants present when the avatar joined.
    pub fn participants_at_join(&self) -> &[Participant] {
        &self.inner.remote_at_join
    }

    /// Time from the connect request to the engine's connect result.
    pub fn join_time(&self) -> Duration {
        self.inner.join_time
    }

    /// The agent this avatar serves: `lk.publish_on_behalf`, else the first participant of kind AGENT.
    pub fn served_agent(&self) -> Option<String> {
        self.inner
            .served_agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Leave the room (waits up to 5 s for the engine).
    pub async fn disconnect(self) -> Result<(), LiveKitError> {
        let engine = self.inner.engine;
        let resp = engine.request(ffi_request::Message::Disconnect(DisconnectRequest {
            room_handle: self.inner.handle.id(),
            reason: Some(DisconnectReason::ClientInitiated as i32),
            ..Default::default()
        }))?;
        if let ffi_response::Message::Disconnect(r) = resp {
            engine
                .wait_reply(r.async_id, "disconnect", Duration::from_secs(5))
                .await?;
        }
        Ok(())
    }

    pub(crate) fn engine(&self) -> &'static Engine {
        self.inner.engine
    }

    pub(crate) fn local_handle(&self) -> u64 {
        self.inner.local.id()
    }
}

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

/// An `lk.audio_stream` reader being read. The engine took ownership of its handle when reading started
/// (the map key; events are routed by it), so it is never dropped here.
struct OpenReader {
    stream_id: String,
    last_activity: Instant,
    /// Set when a newer segment started: end this one if its trailer has not come by then.
    superseded_at: Option<Instant>,
    /// Events held back until the segments before this one have ended.
    queued: Vec<SpeechEvent>,
    ended: bool,
}

/// Turns the engine's raw events into [`RoomEvent`]s; owns the participants' and readers' handles.
struct RoomTask {
    engine: &'static Engine,
    local_handle: u64,
    served_agent: Arc<Mutex<Option<String>>>,
    participants: HashMap<String, (Participant, OwnedHandle)>,
    /// Open `lk.audio_stream` readers by (engine-owned) handle.
    readers: HashMap<u64, OpenReader>,
    /// Reader handles in arrival order; only the front one's events are emitted, so segments never
    /// interleave even when the engine reports a new stream before the previous one's last chunks.
    order: VecDeque<u64>,
    ffi_tx: mpsc::UnboundedSender<RoutedEvent>,
    events: mpsc::UnboundedSender<RoomEvent>,
    /// The engine is rebuilding a lost connection.
    reconnecting: bool,
    /// The served agent has been in the room at some point.
    agent_seen: bool,
}

impl RoomTask {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<RoutedEvent>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = tick.tick() => {
                    self.expire_idle_readers();
                    continue;
                }
                _ = &mut stop => None,
                _ = self.events.closed() => None,
            };
            let Some(msg) = msg else { break };
            if let Some(end) = self.handle(msg) {
                let _ = self.events.send(RoomEvent::SessionEnded(end));
                break;
            }
        }
        for key in self.readers.keys() {
            self.engine.remove_route(*key);
        }
    }

    fn served(&self) -> Option<String> {
        self.served_agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn emit(&self, ev: RoomEvent) {
        let _ = self.events.send(ev);
    }

    /// Handle one event; `Some` ends the session.
    fn handle(&mut self, msg: RoutedEvent) -> Option<EndReason> {
        match msg {
            ffi_event::Message::RoomEvent(ev) => self.room_event(ev.message?),
            ffi_event::Message::RpcMethodInvocation(inv) => {
                self.rpc_invocation(inv);
                None
            }
            ffi_event::Message::ByteStreamReaderEvent(ev) => {
                self.reader_event(ev.reader_handle, ev.detail?);
                None
            }
            _ => None,
        }
    }

    fn room_event(&mut self, ev: room_event::Message) -> Option<EndReason> {
        use room_event::Message as M;
        match ev {
            M::ParticipantConnected(p) => {
                let info = Participant::from(&p.info.info);
                let handle = self.engine.own(p.info.handle.id);
                let is_served = {
                    let mut served = self.served_agent.lock().unwrap_or_else(|p| p.into_inner());
                    if served.is_none() && info.kind == ParticipantKind::Agent {
                        *served = Some(info.identity.clone());
                    }
                    served.as_deref() == Some(info.identity.as_str())
                };
                self.agent_seen |= is_served;
                self.participants
                    .insert(info.identity.clone(), (info.clone(), handle));
                self.emit(RoomEvent::ParticipantJoined {
                    participant: info,
                    is_served_agent: is_served,
                });
            }
            M::ParticipantDisconnected(p) => {
                self.participants.remove(&p.participant_identity);
                let reason = DisconnectReason::try_from(p.disconnect_reason)
                    .unwrap_or(DisconnectReason::UnknownReason);
                self.emit(RoomEvent::ParticipantLeft {
                    identity: p.participant_identity.clone(),
                    reason,
                });
                // While the engine rebuilds a lost connection it drops every remote participant and adds back
                // those still there; only a departure outside a reconnection (or an agent missing after it)
                // ends the session.
                if !self.reconnecting
                    && self.served().as_deref() == Some(p.participant_identity.as_str())
                {
                    return Some(EndReason::AgentLeft {
                        identity: p.participant_identity,
                        reason,
                    });
                }
            }
            M::ParticipantAttributesChanged(a) => {
                if let Some((info, _)) = self.participants.get_mut(&a.participant_identity) {
                    info.attributes = a.attributes.into_iter().map(|e| (e.key, e.value)).collect();
                }
            }
            M::Disconnected(d) => {
                let reason =
                    DisconnectReason::try_from(d.reason).unwrap_or(DisconnectReason::UnknownReason);
                return Some(match reason {
                    DisconnectReason::ParticipantRemoved => EndReason::Removed,
                    DisconnectReason::RoomDeleted | DisconnectReason::RoomClosed => {
                        EndReason::RoomClosed
                    }
                    other => EndReason::Disconnected(other),
                });
            }
            M::Eos(_) => return Some(EndReason::Disconnected(DisconnectReason::UnknownReason)),
            M::Reconnecting(_) => {
                self.reconnecting = true;
                self.emit(RoomEvent::Reconnecting);
            }
            M::Reconnected(_) => {
                self.reconnecting = false;
                self.emit(RoomEvent::Reconnected);
                if let Some(agent) = self.served()
                    && self.agent_seen
                    && !self.participants.contains_key(&agent)
                {
                    return Some(EndReason::AgentLeft {
                        identity: agent,
                        reason: DisconnectReason::UnknownReason,
                    });
                }
            }
            M::ByteStreamOpened(o) => self.byte_stream_opened(o),
            M::TextStreamOpened(o) => drop(self.engine.own(o.reader.handle.id)),
            M::TrackPublished(p) => drop(self.engine.own(p.publication.handle.id)),
            M::TrackSubscribed(t) => drop(self.engine.own(t.track.handle.id)),
            _ => {}
        }
        None
    }

    fn byte_stream_opened(&mut self, o: proto::ByteStreamOpened) {
        let reader = self.engine.own(o.reader.handle.id);
        let info = o.reader.info;
        if info.topic != AUDIO_STREAM_TOPIC {
            return; // other readers are dropped unread
        }
        let sender = o.participant_identity;
        let reject = |reason: String| {
            RoomEvent::Speech(SpeechEvent::Rejected {
                stream_id: info.stream_id.clone(),
                sender: sender.clone(),
                reason,
            })
        };
        if let Some(served) = self.served()
            && served != sender
        {
            self.emit(reject(format!(
                "sender {sender} is not the served agent {served}"
            )));
            return;
        }
        let (sample_rate, num_channels) = match audio_format(&info.attributes) {
            Ok(f) => f,
            Err(reason) => {
                tracing::warn!(stream = %info.stream_id, %sender, %reason, "dropping audio stream");
                self.emit(reject(reason));
                return;
            }
        };
        self.engine.add_route(reader.id(), self.ffi_tx.clone());
        let req =
            ffi_request::Message::ByteReadIncremental(ByteStreamReaderReadIncrementalRequest {
                reader_handle: reader.id(),
            });
        if let Err(e) = self.engine.request(req) {
            self.engine.remove_route(reader.id());
            self.emit(reject(e.to_string()));
            return;
        }
        // A new segment while one is open means the open one was abandoned (the agents' receiver ends it).
        // The engine may still deliver its last chunks and trailer just after this header: allow a grace.
        let now = Instant::now();
        for r in self.readers.values_mut().filter(|r| !r.ended) {
            r.superseded_at.get_or_insert(now + SUPERSEDED_GRACE);
        }
        let stream_id = info.stream_id.clone();
        // `byte_read_incremental` consumed the reader: the engine frees it, we must not drop it.
        let handle = reader.into_engine();
        self.readers.insert(
            handle,
            OpenReader {
                stream_id: stream_id.clone(),
                last_activity: now,
                superseded_at: None,
                queued: Vec::new(),
                ended: false,
            },
        );
        self.order.push_back(handle);
        self.emit_speech(
            handle,
            SpeechEvent::Start(SegmentStart {
                stream_id,
                sender,
                sample_rate,
                num_channels,
                mime_type: info.mime_type,
                attributes: info.attributes,
            }),
        );
    }

    /// Emit `ev` of reader `handle` now if its segment is the current one, else hold it back.
    fn emit_speech(&mut self, handle: u64, ev: SpeechEvent) {
        if self.order.front() == Some(&handle) {
            self.emit(RoomEvent::Speech(ev));
        } else if let Some(r) = self.readers.get_mut(&handle) {
            r.queued.push(ev);
        }
    }

    fn reader_event(&mut self, handle: u64, detail: byte_stream_reader_event::Detail) {
        match detail {
            byte_stream_reader_event::Detail::ChunkReceived(c) => {
                if let Some(r) = self.readers.get_mut(&handle).filter(|r| !r.ended) {
                    r.last_activity = Instant::now();
                    let stream_id = r.stream_id.clone();
                    self.emit_speech(
                        handle,
                        SpeechEvent::Chunk {
                            stream_id,
                            data: c.content,
                        },
                    );
                }
            }
            byte_stream_reader_event::Detail::Eos(eos) => {
                self.end_reader(handle, eos.error.map(|e| e.description));
            }
        }
    }

    /// Stop routing reader `handle`, end its segment, and release segments held behind it.
    fn end_reader(&mut self, handle: u64, error: Option<String>) {
        self.engine.remove_route(handle);
        let Some(r) = self.readers.get_mut(&handle).filter(|r| !r.ended) else {
            return;
        };
        r.ended = true;
        let stream_id = r.stream_id.clone();
        self.emit_speech(handle, SpeechEvent::End { stream_id, error });
        // Retire ended segments at the front; flush what the next ones held back.
        while let Some(&front) = self.order.front() {
            let Some(r) = self.readers.get_mut(&front) else {
                self.order.pop_front();
                continue;
            };
            let queued = std::mem::take(&mut r.queued);
            let ended = r.ended;
            for ev in queued {
                self.emit(RoomEvent::Speech(ev));
            }
            if !ended {
                break;
            }
            self.order.pop_front();
            self.readers.remove(&front);
        }
    }

    /// End segments silent for [`STREAM_IDLE_TIMEOUT`] or superseded by a newer one past the grace.
    fn expire_idle_readers(&mut self) {
        let now = Instant::now();
        let expired: Vec<(u64, &'static str)> = self
            .readers
            .iter()
            .filter(|(_, r)| !r.ended)
            .filter_map(|(h, r)| {
                if r.superseded_at.is_some_and(|t| now >= t) {
                    Some((*h, "superseded by a new segment"))
                } else if r.last_activity.elapsed() >= STREAM_IDLE_TIMEOUT {
                    Some((*h, "idle timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (h, why) in expired {
            tracing::warn!(reader = h, why, "ending an unfinished audio segment");
            self.end_reader(h, Some(why.into()));
        }
    }

    fn rpc_invocation(&mut self, inv: RpcMethodInvocationEvent) {
        let served = self.served();
        let (payload, error) = if inv.method != RPC_CLEAR_BUFFER {
            (None, Some(rpc_error(1400, "unsupported method")))
        } else if served.as_deref() == Some(inv.caller_identity.as_str()) {
            self.emit(RoomEvent::ClearBuffer(ClearBufferRequest {
                caller: inv.caller_identity.clone(),
                payload: inv.payload.clone(),
            }));
            (Some("ok".to_owned()), None)
        } else {
            tracing::warn!(caller = %inv.caller_identity, ?served, "refusing lk.clear_buffer from a participant that is not the served agent");
            (
                None,
                Some(rpc_error(
                    RPC_APPLICATION_ERROR,
                    "caller is not the agent this avatar serves",
                )),
            )
        };
        let req =
            ffi_request::Message::RpcMethodInvocationResponse(RpcMethodInvocationResponseRequest {
                local_participant_handle: self.local_handle,
                invocation_id: inv.invocation_id,
                payload,
                error,
            });
        if let Err(e) = self.engine.request(req) {
            tracing::warn!(error = %e, "answering an RPC failed");
        }
    }
}

fn rpc_error(code: u32, message: &str) -> RpcError {
    RpcError {
        code,
        message: message.to_owned(),
        data: None,
    }
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

    #[test]
    fn kinds_map() {
        assert_eq!(ParticipantKind::from(4), ParticipantKind::Agent);
        assert_eq!(ParticipantKind::from(99), ParticipantKind::Other(99));
    }
}
