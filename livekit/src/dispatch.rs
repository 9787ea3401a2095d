//! The engine singleton and its one event dispatcher thread.
//!
//! The engine calls back on its own threads with serialized `FfiEvent`s. The callback only copies the bytes
//! into a channel; one dispatcher thread decodes them and routes them:
//! - replies to async requests (by `async_id`) complete the future waiting for them;
//! - room events, RPC invocations and byte-stream reader events go to the bounded channel registered for
//!   their room / local participant / reader handle (the dispatcher waits while it is full: the events of a
//!   room are never dropped, and the callback itself never blocks the engine);
//! - engine logs go to `tracing`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::error::LiveKitError;
use super::ffi::FfiLibrary;
use super::handle::OwnedHandle;
use super::proto::{FfiEvent, LogLevel, ffi_event, ffi_request, ffi_response};

/// An event routed to a room (room events, RPC invocations, byte-stream reader events).
pub type RoutedEvent = ffi_event::Message;

/// Events a room's channel holds before the dispatcher waits for its reader (a second of speech arrives in
/// about 50 chunks).
pub const ROUTE_CAPACITY: usize = 1024;

#[derive(Default)]
struct Routing {
    /// Futures waiting for the reply to an async request.
    pending: HashMap<u64, oneshot::Sender<ffi_event::Message>>,
    /// Replies that arrived before anyone waited (the engine may answer before `request` returns).
    early: HashMap<u64, ffi_event::Message>,
    /// Channels by room, local participant or reader handle.
    routes: HashMap<u64, mpsc::Sender<RoutedEvent>>,
    /// Set when the engine reported a panic.
    panicked: Option<String>,
}

/// The loaded engine. One per process (the C callback carries no context).
pub struct Engine {
    lib: FfiLibrary,
    routing: Mutex<Routing>,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());
static EVENT_TX: OnceLock<Mutex<std_mpsc::Sender<Vec<u8>>>> = OnceLock::new();
static LIBRARY: OnceLock<PathBuf> = OnceLock::new();

/// Where `liblivekit_ffi.so` is; the engine is loaded from there on first use. Only the first call counts.
pub fn use_library(path: PathBuf) {
    let _ = LIBRARY.set(path);
}

/// The process's engine, loading the library (from [`use_library`]) on first use.
pub(crate) fn engine() -> Result<&'static Engine, LiveKitError> {
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let path = LIBRARY
        .get()
        .cloned()
        .ok_or(LiveKitError::LibraryNotFound)?;
    let lib = FfiLibrary::load(&path)?;
    let engine = ENGINE.get_or_init(|| Engine {
        lib,
        routing: Mutex::new(Routing::default()),
    });
    let (tx, rx) = std_mpsc::channel::<Vec<u8>>();
    let _ = EVENT_TX.set(Mutex::new(tx));
    std::thread::Builder::new()
        .name("livekit-dispatch".into())
        .spawn(move || dispatch_loop(engine, rx))
        .map_err(|e| LiveKitError::LibraryLoad {
            path: path.clone(),
            reason: format!("dispatcher thread: {e}"),
        })?;
    engine.lib.initialize(on_event, true);
    tracing::debug!(path = %path.display(), "LiveKit engine loaded");
    Ok(engine)
}

/// Tear the engine down at process exit (leaves every room at once). A no-op when it was never loaded;
/// every later request fails.
pub fn shutdown() {
    if let Some(e) = ENGINE.get() {
        e.lib.dispose();
    }
}

unsafe extern "C" fn on_event(data: *const u8, len: usize) {
    if data.is_null() {
        return;
    }
    // SAFETY: the engine passes a buffer valid for `len` bytes for the duration of the call.
    let bytes = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
    if let Some(tx) = EVENT_TX.get() {
        let tx = tx.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(bytes);
    }
}

fn dispatch_loop(engine: &'static Engine, rx: std_mpsc::Receiver<Vec<u8>>) {
    while let Ok(bytes) = rx.recv() {
        match FfiEvent::decode(bytes.as_slice()) {
            Ok(FfiEvent { message: Some(msg) }) => engine.route(msg),
            Ok(FfiEvent { message: None }) => {}
            Err(e) => tracing::warn!(error = %e, "undecodable event from the LiveKit engine"),
        }
    }
}

/// The `async_id` of a reply to an async request, if `msg` is one.
fn async_id_of(msg: &ffi_event::Message) -> Option<u64> {
    use ffi_event::Message as M;
    Some(match msg {
        M::Connect(m) => m.async_id,
        M::Disconnect(m) => m.async_id,
        M::Dispose(m) => m.async_id,
        M::PublishTrack(m) => m.async_id,
        M::UnpublishTrack(m) => m.async_id,
        M::PublishData(m) => m.async_id,
        M::CaptureAudioFrame(m) => m.async_id,
        M::SetLocalMetadata(m) => m.async_id,
        M::SetLocalName(m) => m.async_id,
        M::SetLocalAttributes(m) => m.async_id,
        M::GetStats(m) => m.async_id,
        M::PerformRpc(m) => m.async_id,
        M::ByteStreamReaderReadAll(m) => m.async_id,
        _ => return None,
    })
}

/// The handle an unsolicited event is routed by.
fn route_key(msg: &ffi_event::Message) -> Option<u64> {
    use ffi_event::Message as M;
    match msg {
        M::RoomEvent(e) => Some(e.room_handle),
        M::RpcMethodInvocation(e) => Some(e.local_participant_handle),
        M::ByteStreamReaderEvent(e) => Some(e.reader_handle),
        _ => None,
    }
}

impl Engine {
    pub(crate) fn lib(&self) -> &FfiLibrary {
        &self.lib
    }

    fn routing(&self) -> MutexGuard<'_, Routing> {
        self.routing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn route(&'static self, msg: ffi_event::Message) {
        if let ffi_event::Message::Logs(batch) = &msg {
            for r in &batch.records {
                // The engine's messages may quote the access token (a refused join does): never log it.
                let message = super::error::redact_tokens(&r.message);
                match r.level() {
                    LogLevel::LogError => {
                        tracing::error!(target: "livekit_ffi", "{}: {message}", r.target)
                    }
                    LogLevel::LogWarn => {
                        tracing::warn!(target: "livekit_ffi", "{}: {message}", r.target)
                    }
                    LogLevel::LogInfo => {
                        tracing::debug!(target: "livekit_ffi", "{}: {message}", r.target)
                    }
                    _ => tracing::trace!(target: "livekit_ffi", "{}: {message}", r.target),
                }
            }
            return;
        }
        if let ffi_event::Message::Panic(p) = &msg {
            tracing::error!(message = %p.message, "LiveKit engine panicked");
            let mut r = self.routing();
            r.panicked = Some(p.message.clone());
            r.pending.clear(); // waiters see EngineGone
            r.routes.clear(); // rooms see their channel close
            return;
        }
        if let Some(id) = async_id_of(&msg) {
            let mut r = self.routing();
            match r.pending.remove(&id) {
                Some(tx) => {
                    let _ = tx.send(msg);
                }
                None => {
                    r.early.insert(id, msg);
                }
            }
            return;
        }
        if let Some(key) = route_key(&msg) {
            let tx = self.routing().routes.get(&key).cloned();
            match tx {
                Some(tx) => {
                    // The dispatcher is a plain thread: waiting here is allowed, and is the back-pressure.
                    if let Err(mpsc::error::SendError(msg)) = tx.blocking_send(msg) {
                        self.routing().routes.remove(&key);
                        release_handles(self, msg);
                    }
                }
                None => release_handles(self, msg),
            }
            return;
        }
        tracing::trace!("unrouted LiveKit engine event");
    }

    /// Send a synchronous request.
    pub fn request(
        &'static self,
        msg: ffi_request::Message,
    ) -> Result<ffi_response::Message, LiveKitError> {
        if let Some(p) = &self.routing().panicked {
            return Err(LiveKitError::EnginePanic(p.clone()));
        }
        self.lib.request(msg)
    }

    /// Wait for the reply to async request `async_id`, at most `timeout`.
    pub async fn wait_reply(
        &'static self,
        async_id: u64,
        what: &'static str,
        timeout: Duration,
    ) -> Result<ffi_event::Message, LiveKitError> {
        let rx = {
            let mut r = self.routing();
            if let Some(m) = r.early.remove(&async_id) {
                return Ok(m);
            }
            if let Some(p) = &r.panicked {
                return Err(LiveKitError::EnginePanic(p.clone()));
            }
            let (tx, rx) = oneshot::channel();
            r.pending.insert(async_id, tx);
            rx
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err(LiveKitError::EngineGone(what)),
            Err(_) => {
                let mut r = self.routing();
                r.pending.remove(&async_id);
                r.early.remove(&async_id);
                Err(LiveKitError::Timeout {
                    what,
                    after: timeout,
                })
            }
        }
    }

    /// Route events for `key` (a room, local participant or reader handle) to `tx`.
    pub fn add_route(&self, key: u64, tx: mpsc::Sender<RoutedEvent>) {
        self.routing().routes.insert(key, tx);
    }

    /// Stop routing events for `key`.
    pub fn remove_route(&self, key: u64) {
        self.routing().routes.remove(&key);
    }

    /// Own `id` (see [`OwnedHandle`]).
    #[track_caller]
    pub fn own(&'static self, id: u64) -> OwnedHandle {
        tracing::trace!(handle = id, at = %std::panic::Location::caller(), "owning engine handle");
        OwnedHandle::new(self, id)
    }
}

/// Drop the handles an event nobody listens to carries.
fn release_handles(engine: &'static Engine, msg: ffi_event::Message) {
    use super::proto::room_event::Message as R;
    if let ffi_event::Message::RoomEvent(ev) = msg {
        let id = match ev.message {
            Some(R::ParticipantConnected(p)) => p.info.handle.id,
            Some(R::TrackPublished(p)) => p.publication.handle.id,
            Some(R::TrackSubscribed(t)) => t.track.handle.id,
            Some(R::ByteStreamOpened(o)) => o.reader.handle.id,
            Some(R::TextStreamOpened(o)) => o.reader.handle.id,
            _ => 0,
        };
        drop(engine.own(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        ByteStreamReaderEvent, ConnectCallback, PerformRpcCallback, RoomEvent,
        RpcMethodInvocationEvent,
    };

    #[test]
    fn replies_are_correlated_by_async_id() {
        let m = ffi_event::Message::Connect(ConnectCallback {
            async_id: 7,
            message: None,
        });
        assert_eq!(async_id_of(&m), Some(7));
        let m = ffi_event::Message::PerformRpc(PerformRpcCallback {
            async_id: 9,
            ..Default::default()
        });
        assert_eq!(async_id_of(&m), Some(9));
        assert_eq!(route_key(&m), None);
    }

    #[test]
    fn unsolicited_events_are_routed_by_handle() {
        let m = ffi_event::Message::RoomEvent(RoomEvent {
            room_handle: 3,
            message: None,
        });
        assert_eq!((async_id_of(&m), route_key(&m)), (None, Some(3)));
        let m = ffi_event::Message::RpcMethodInvocation(RpcMethodInvocationEvent {
            local_participant_handle: 4,
            ..Default::default()
        });
        assert_eq!(route_key(&m), Some(4));
        let m = ffi_event::Message::ByteStreamReaderEvent(ByteStreamReaderEvent {
            reader_handle: 5,
            detail: None,
        });
        assert_eq!(route_key(&m), Some(5));
    }
}
