//! The avatar RPCs of the LiveKit agents protocol.

use std::time::Duration;

use serde::Serialize;

use super::error::LiveKitError;
use super::proto::{PerformRpcRequest, ffi_event, ffi_request, ffi_response};
use super::room::Room;

pub const RPC_CLEAR_BUFFER: &str = "lk.clear_buffer";
pub const RPC_PLAYBACK_STARTED: &str = "lk.playback_started";
pub const RPC_PLAYBACK_FINISHED: &str = "lk.playback_finished";
/// RPC error code: the callee did not register the method.
pub const RPC_UNSUPPORTED_METHOD: u32 = 1400;
/// RPC error code used to refuse callers other than the served agent.
pub const RPC_APPLICATION_ERROR: u32 = 1500;

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// An accepted `lk.clear_buffer` from the served agent (already answered `"ok"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearBufferRequest {
    pub caller: String,
    pub payload: String,
}

/// `lk.playback_finished` payload; serialises exactly as the agent's `PlaybackFinishedEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlaybackFinished {
    /// Seconds of the segment actually played.
    pub playback_position: f64,
    pub interrupted: bool,
    /// Always `null` (the agent rebuilds the event from these three keys exactly).
    pub synchronized_transcript: Option<()>,
}

impl PlaybackFinished {
    pub fn new(playback_position: f64, interrupted: bool) -> Self {
        Self {
            playback_position,
            interrupted,
            synchronized_transcript: None,
        }
    }

    /// The JSON payload: `{"playback_position": <f64>, "interrupted": <bool>, "synchronized_transcript": null}`.
    pub fn payload(&self) -> String {
        let pos = if self.playback_position.is_finite() {
            self.playback_position.max(0.0)
        } else {
            0.0
        };
        // Format by hand so the float always carries a decimal point and the key order is fixed.
        let pos = serde_json::to_string(&pos).unwrap_or_else(|_| "0.0".into());
        format!(
            "{{\"playback_position\": {pos}, \"interrupted\": {}, \"synchronized_transcript\": null}}",
            self.interrupted
        )
    }
}

/// Why a call to a remote method failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcCallError {
    /// No agent to call yet (none joined and no `lk.publish_on_behalf`).
    #[error("no agent participant to call")]
    NoAgent,
    /// The remote answered with an RPC error (e.g. 1400 unsupported method, 1500 application error).
    #[error("RPC error {code}: {message}")]
    Remote {
        code: u32,
        message: String,
        data: Option<String>,
    },
    #[error(transparent)]
    Engine(#[from] LiveKitError),
}

impl Room {
    /// Call `method` on `destination` and return its answer.
    pub async fn perform_rpc(
        &self,
        destination: &str,
        method: &str,
        payload: &str,
        timeout: Duration,
    ) -> Result<String, RpcCallError> {
        let engine = self.engine();
        let resp = engine.request(ffi_request::Message::PerformRpc(PerformRpcRequest {
            local_participant_handle: self.local_handle(),
            destination_identity: destination.to_owned(),
            method: method.to_owned(),
            payload: payload.to_owned(),
            response_timeout_ms: Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)),
            ..Default::default()
        }))?;
        let ffi_response::Message::PerformRpc(r) = resp else {
            return Err(LiveKitError::UnexpectedResponse {
                request: "perform_rpc",
            }
            .into());
        };
        let reply = engine
            .wait_reply(r.async_id, "perform_rpc", timeout + Duration::from_secs(2))
            .await?;
        let ffi_event::Message::PerformRpc(cb) = reply else {
            return Err(LiveKitError::UnexpectedResponse {
                request: "perform_rpc",
            }
            .into());
        };
        match cb.error {
            Some(e) => Err(RpcCallError::Remote {
                code: e.code,
                message: e.message,
                data: e.data,
            }),
            None => Ok(cb.payload.unwrap_or_default()),
        }
    }

    /// Tell the served agent playback of a segment started. An agent that does not register the method
    /// (error 1400, e.g. bitHuman's plugin) is fine.
    pub async fn playback_started(&self) -> Result<(), RpcCallError> {
        let agent = self.served_agent().ok_or(RpcCallError::NoAgent)?;
        match self
            .perform_rpc(&agent, RPC_PLAYBACK_STARTED, "", RPC_TIMEOUT)
            .await
        {
            Ok(_) => Ok(()),
            Err(RpcCallError::Remote {
                code: RPC_UNSUPPORTED_METHOD,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tell the served agent a segment finished (or was interrupted). Retried 3 times, 100 ms apart, on
    /// transport errors (not on answers).
    pub async fn playback_finished(&self, event: PlaybackFinished) -> Result<(), RpcCallError> {
        let agent = self.served_agent().ok_or(RpcCallError::NoAgent)?;
        let payload = event.payload();
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match self
                .perform_rpc(&agent, RPC_PLAYBACK_FINISHED, &payload, RPC_TIMEOUT)
                .await
            {
                Ok(_) => return Ok(()),
                // Connection-level codes (1501..=1505) and engine errors are worth a retry; answers are not.
                Err(e) if matches!(&e, RpcCallError::Remote { code, .. } if !(1501..=1505).contains(code)) =>
                {
                    return Err(e);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(RpcCallError::NoAgent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_finished_payload_is_exact() {
        assert_eq!(
            PlaybackFinished::new(3.0, false).payload(),
            r#"{"playback_position": 3.0, "interrupted": false, "synchronized_transcript": null}"#
        );
        assert_eq!(
            PlaybackFinished::new(1.24, true).payload(),
            r#"{"playback_position": 1.24, "interrupted": true, "synchronized_transcript": null}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&PlaybackFinished::new(f64::NAN, true).payload())
                .unwrap_or(serde_json::Value::Null);
        assert_eq!(v["playback_position"], serde_json::json!(0.0));
        assert!(v["synchronized_transcript"].is_null());
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }
}
