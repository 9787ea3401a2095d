//! Typed errors of the LiveKit layer.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong talking to LiveKit through the engine.
#[derive(Debug, thiserror::Error)]
pub enum LiveKitError {
    /// `liblivekit_ffi.so` was not found (run `scripts/setup.sh` or set `LIVEKIT_FFI_PATH`).
    #[error("liblivekit_ffi.so not found: run scripts/setup.sh or set LIVEKIT_FFI_PATH")]
    LibraryNotFound,
    /// The library exists but could not be loaded or lacks a symbol.
    #[error("cannot load {path}: {reason}")]
    LibraryLoad { path: PathBuf, reason: String },
    /// The engine refused a request outright (invalid handle 0 or an undecodable response).
    #[error("LiveKit engine request {request} failed: {reason}")]
    Request {
        request: &'static str,
        reason: String,
    },
    /// The engine answered with a message of another kind than the request.
    #[error("LiveKit engine answered {request} with an unexpected message")]
    UnexpectedResponse { request: &'static str },
    /// The server refused the token (HTTP 401/403 on join).
    #[error("LiveKit server refused the token: {0}")]
    Unauthorized(String),
    /// The server could not be reached (DNS, TCP, TLS or websocket failure).
    #[error("LiveKit server unreachable: {0}")]
    Unreachable(String),
    /// Any other connection failure reported by the engine.
    #[error("cannot join the LiveKit room: {0}")]
    Connect(String),
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
    /// Publishing a track failed.
    #[error("publishing track {track} failed: {reason}")]
    Publish { track: &'static str, reason: String },
    /// Capturing a frame failed.
    #[error("capturing a frame failed: {0}")]
    Capture(String),
    /// Frame data did not match the declared size.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// The dispatcher or the engine went away before answering.
    #[error("the LiveKit engine stopped before answering {0}")]
    EngineGone(&'static str),
    /// The engine reported a panic; nothing further can be trusted.
    #[error("the LiveKit engine panicked: {0}")]
    EnginePanic(String),
}

impl LiveKitError {
    /// Classify the engine's connect error string (with any access token in it redacted: the server echoes
    /// a refused token, and the message becomes the task's `error`).
    pub(crate) fn from_connect_error(msg: String) -> Self {
        let msg = redact_tokens(&msg);
        let lower = msg.to_ascii_lowercase();
        if lower.contains("401")
            || lower.contains("403")
            || lower.contains("unauthorized")
            || lower.contains("forbidden")
            || lower.contains("invalid token")
            || lower.contains("permission")
        {
            LiveKitError::Unauthorized(msg)
        } else if lower.contains("connection refused")
            || lower.contains("unreachable")
            || lower.contains("dns")
            || lower.contains("failed to lookup")
            || lower.contains("timed out")
            || lower.contains("timeout")
            || lower.contains("io error")
            || lower.contains("no route")
        {
            LiveKitError::Unreachable(msg)
        } else {
            LiveKitError::Connect(msg)
        }
    }
}

/// `msg` with every JWT in it (three base64url parts, the first a JSON header: `eyJ…`) replaced by
/// `<token>`. A LiveKit token is a credential: it is never logged or stored.
pub(crate) fn redact_tokens(msg: &str) -> String {
    let is_b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find("eyJ") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let len = from
            .find(|c: char| !(is_b64url(c) || c == '.'))
            .unwrap_or(from.len());
        let candidate = &from[..len];
        if candidate.split('.').count() == 3 {
            out.push_str("<token>");
        } else {
            out.push_str(candidate);
        }
        rest = &from[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_engine_messages() {
        let msg = "engine: signal failure: client error: 401 Unauthorized - invalid token: \
                   eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_x, then more; \
                   wss://h/rtc?access_token=eyJhbGciOiJIUzI1NiJ9.eyJ9.abc&auto_subscribe=1";
        let clean = redact_tokens(msg);
        assert!(!clean.contains("eyJ"), "{clean}");
        assert_eq!(clean.matches("<token>").count(), 2, "{clean}");
        assert!(
            clean.contains("401 Unauthorized - invalid token: <token>, then more"),
            "{clean}"
        );
        assert_eq!(redact_tokens("eyJust a word"), "eyJust a word");
        assert!(matches!(
            LiveKitError::from_connect_error(msg.into()),
            LiveKitError::Unauthorized(m) if !m.contains("eyJ")
        ));
    }

    #[test]
    fn classifies_connect_errors() {
        assert!(matches!(
            LiveKitError::from_connect_error(
                "failed to connect: http status 401 Unauthorized".into()
            ),
            LiveKitError::Unauthorized(_)
        ));
        assert!(matches!(
            LiveKitError::from_connect_error("Connection refused (os error 111)".into()),
            LiveKitError::Unreachable(_)
        ));
        assert!(matches!(
            LiveKitError::from_connect_error("something else".into()),
            LiveKitError::Connect(_)
        ));
    }
}
