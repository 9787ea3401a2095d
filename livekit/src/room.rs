//! Joining a room, its participants, and the stream of what happens in it.
//!
//! There is no task between the engine and the caller: [`RoomEvents::recv`] turns the engine's raw events
//! into [`RoomEvent`]s on the caller's own task, from a bounded channel the dispatcher fills.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::dispatch::{Engine, ROUTE_CAPACITY, RoutedEvent, engine};
use super::error::LiveKitError;
use super::handle::OwnedHandle;
use super::proto::{
    self, ByteStreamReaderReadIncrementalRequest, ConnectRequest, DisconnectRequest,
    ReadyForRoomEventRequest, RegisterRpcMethodRequest, byte_stream_reader_event, connect_callback,
    ffi_event, ffi_request, ffi_response, room_event,
};
use super::rpc::RpcInvocation;
use super::streams::{IncomingByteStream, ReaderId};

/// Why the server or the engine disconnected a participant (LiveKit's `DisconnectReason`).
pub type DisconnectReason = proto::DisconnectReason;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Overall limit for joining (signalling + ICE).
    pub timeout: Duration,
    /// Subscribe to other participants' tracks (the avatar does not need them).
    pub auto_subscribe: bool,
    /// RPC methods this participant answers, registered before the first event is delivered (invocations
    /// arrive as [`RoomEvent::RpcInvocation`]; other methods are refused by the engine).
    pub rpc_methods: Vec<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            auto_subscribe: false,
            rpc_methods: Vec::new(),
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

/// What happens in the room, in order.
#[derive(Debug)]
pub enum RoomEvent {
    ParticipantJoined(Participant),
    ParticipantLeft {
        identity: String,
        reason: DisconnectReason,
    },
    /// The engine lost the connection and tries to resume it. While it does, it reports every remote
    /// participant as left and those still there as joined again.
    Reconnecting,
    Reconnected,
    /// A remote participant opened a byte stream: read it with [`RoomEvents::read`], or drop it unread.
    ByteStreamOpened(IncomingByteStream),
    /// Bytes of a stream being read.
    ByteStreamChunk {
        reader: ReaderId,
        data: Vec<u8>,
    },
    /// A stream being read ended (its trailer); `error` is set when it was aborted or broke.
    ByteStreamEnded {
        reader: ReaderId,
        error: Option<String>,
    },
    /// A remote participant called one of [`ConnectOptions::rpc_methods`]: answer it with
    /// [`RpcInvocation::respond`] (dropping it unanswered lets the caller time out).
    RpcInvocation(RpcInvocation),
    /// Last event: this participant is no longer in the room.
    Disconnected(DisconnectReason),
}

/// The room's events; ends after [`RoomEvent::Disconnected`], or when the engine goes away.
///
/// Owns the remote participants' handles and routes the byte streams it reads, so it lives on the one task
/// that consumes the events.
pub struct RoomEvents {
    engine: &'static Engine,
    local_handle: u64,
    rx: mpsc::Receiver<RoutedEvent>,
    /// A sender of `rx`'s channel, for the byte streams read (weak: the stream ends once the room and
    /// every stream being read have let go of theirs).
    tx: mpsc::WeakSender<RoutedEvent>,
    participants: HashMap<String, (Participant, OwnedHandle)>,
    /// Byte streams being read (their handles are the engine's once reading started).
    readers: HashSet<u64>,
    ended: bool,
}

impl RoomEvents {
    /// The next event, or `None` when the room is gone.
    pub async fn recv(&mut self) -> Option<RoomEvent> {
        while !self.ended {
            let msg = self.rx.recv().await?;
            if let Some(ev) = self.convert(msg) {
                self.ended = matches!(ev, RoomEvent::Disconnected(_));
                return Some(ev);
            }
        }
        None
    }

    /// The remote participants in the room now (as the events so far described them).
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values().map(|(p, _)| p)
    }

    /// Start reading `stream` incrementally: its bytes arrive as [`RoomEvent::ByteStreamChunk`].
    pub fn read(&mut self, stream: IncomingByteStream) -> Result<ReaderId, LiveKitError> {
        let handle = stream.handle;
        let tx = self
            .tx
            .upgrade()
            .ok_or(LiveKitError::EngineGone("reading a byte stream"))?;
        self.engine.add_route(handle.id(), tx);
        let req =
            ffi_request::Message::ByteReadIncremental(ByteStreamReaderReadIncrementalRequest {
                reader_handle: handle.id(),
            });
        if let Err(e) = self.engine.request(req) {
            self.engine.remove_route(handle.id());
            return Err(e);
        }
        // `byte_read_incremental` consumed the reader: the engine frees it, we must not drop it.
        let id = handle.into_engine();
        self.readers.insert(id);
        Ok(ReaderId(id))
    }

    /// Stop delivering `reader`'s events (an abandoned stream).
    pub fn stop_reading(&mut self, reader: ReaderId) {
        if self.readers.remove(&reader.0) {
            self.engine.remove_route(reader.0);
        }
    }

    fn convert(&mut self, msg: RoutedEvent) -> Option<RoomEvent> {
        match msg {
            ffi_event::Message::RoomEvent(ev) => self.room_event(ev.message?),
            ffi_event::Message::RpcMethodInvocation(inv) => Some(RoomEvent::RpcInvocation(
                RpcInvocation::new(self.engine, self.local_handle, inv),
            )),
            ffi_event::Message::ByteStreamReaderEvent(ev) => {
                let reader = ReaderId(ev.reader_handle);
                match ev.detail? {
                    byte_stream_reader_event::Detail::ChunkReceived(c) => {
                        Some(RoomEvent::ByteStreamChunk {
                            reader,
                            data: c.content,
                        })
                    }
                    byte_stream_reader_event::Detail::Eos(eos) => {
                        self.stop_reading(reader);
                        Some(RoomEvent::ByteStreamEnded {
                            reader,
                            error: eos.error.map(|e| e.description),
                        })
                    }
                }
            }
            _ => None,
        }
    }

    fn room_event(&mut self, ev: room_event::Message) -> Option<RoomEvent> {
        use room_event::Message as M;
        let reason =
            |r: i32| DisconnectReason::try_from(r).unwrap_or(DisconnectReason::UnknownReason);
        Some(match ev {
            M::ParticipantConnected(p) => {
                let info = Participant::from(&p.info.info);
                let handle = self.engine.own(p.info.handle.id);
                self.participants
                    .insert(info.identity.clone(), (info.clone(), handle));
                RoomEvent::ParticipantJoined(info)
            }
            M::ParticipantDisconnected(p) => {
                self.participants.remove(&p.participant_identity);
                RoomEvent::ParticipantLeft {
                    identity: p.participant_identity,
                    reason: reason(p.disconnect_reason),
                }
            }
            M::ParticipantAttributesChanged(a) => {
                if let Some((info, _)) = self.participants.get_mut(&a.participant_identity) {
                    info.attributes = a.attributes.into_iter().map(|e| (e.key, e.value)).collect();
                }
                return None;
            }
            M::Disconnected(d) => RoomEvent::Disconnected(reason(d.reason)),
            M::Eos(_) => RoomEvent::Disconnected(DisconnectReason::UnknownReason),
            M::Reconnecting(_) => RoomEvent::Reconnecting,
            M::Reconnected(_) => RoomEvent::Reconnected,
            M::ByteStreamOpened(o) => {
                RoomEvent::ByteStreamOpened(IncomingByteStream::new(self.engine, o))
            }
            M::TextStreamOpened(o) => {
                drop(self.engine.own(o.reader.handle.id));
                return None;
            }
            M::TrackPublished(p) => {
                drop(self.engine.own(p.publication.handle.id));
                return None;
            }
            M::TrackSubscribed(t) => {
                drop(self.engine.own(t.track.handle.id));
                return None;
            }
            _ => return None,
        })
    }
}

impl Drop for RoomEvents {
    fn drop(&mut self) {
        for id in self.readers.drain() {
            self.engine.remove_route(id);
        }
    }
}

/// A joined room. Dropping it (every clone of the `Arc` a caller shares) leaves the room.
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
    remote_at_join: Vec<Participant>,
    join_time: Duration,
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

        let (tx, rx) = mpsc::channel(ROUTE_CAPACITY);
        engine.add_route(handle.id(), tx.clone());
        engine.add_route(local.id(), tx.clone());
        let inner = RoomInner {
            engine,
            local,
            handle,
            name: result.room.info.name,
            sid: result.room.info.sid.unwrap_or_default(),
            local_identity: local_info.identity,
            local_attributes: local_info.attributes,
            remote_at_join,
            join_time,
        };
        // On error `inner` drops here: routes removed, handles released.
        for method in options.rpc_methods {
            engine.request(ffi_request::Message::RegisterRpcMethod(
                RegisterRpcMethodRequest {
                    local_participant_handle: inner.local.id(),
                    method,
                },
            ))?;
        }
        let events = RoomEvents {
            engine,
            local_handle: inner.local.id(),
            rx,
            tx: tx.downgrade(),
            participants,
            readers: HashSet::new(),
            ended: false,
        };
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
            events,
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

    /// This participant's own attributes (from its token).
    pub fn local_attributes(&self) -> &HashMap<String, String> {
        &self.inner.local_attributes
    }

    /// The other participants present when this one joined.
    pub fn participants_at_join(&self) -> &[Participant] {
        &self.inner.remote_at_join
    }

    /// Time from the connect request to the engine's connect result.
    pub fn join_time(&self) -> Duration {
        self.inner.join_time
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map() {
        assert_eq!(ParticipantKind::from(4), ParticipantKind::Agent);
        assert_eq!(ParticipantKind::from(99), ParticipantKind::Other(99));
    }
}
