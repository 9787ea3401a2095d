//! Byte streams other participants open to this one (LiveKit data streams).

use std::collections::HashMap;

use super::dispatch::Engine;
use super::handle::OwnedHandle;
use super::proto;

/// Identifies a byte stream being read (the engine's reader handle), in its chunk and end events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReaderId(pub(crate) u64);

/// A byte stream a remote participant opened, not read yet. Dropping it releases it unread.
#[derive(Debug)]
pub struct IncomingByteStream {
    pub(crate) handle: OwnedHandle,
    pub stream_id: String,
    pub topic: String,
    /// Identity of the participant that opened it.
    pub sender: String,
    pub mime_type: String,
    pub attributes: HashMap<String, String>,
}

impl IncomingByteStream {
    pub(crate) fn new(engine: &'static Engine, opened: proto::ByteStreamOpened) -> Self {
        let info = opened.reader.info;
        Self {
            handle: engine.own(opened.reader.handle.id),
            stream_id: info.stream_id,
            topic: info.topic,
            sender: opened.participant_identity,
            mime_type: info.mime_type,
            attributes: info.attributes,
        }
    }
}
