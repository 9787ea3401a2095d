//! Remote procedure calls between participants: calling a method on another participant, and the
//! invocations of this participant's own methods.

use std::time::Duration;

use super::dispatch::Engine;
use super::error::LiveKitError;
use super::proto::{
    self, PerformRpcRequest, RpcMethodInvocationEvent, RpcMethodInvocationResponseRequest,
    ffi_event, ffi_request, ffi_response,
};
use super::room::Room;

/// Error code for a method the callee did not register (LiveKit's `UNSUPPORTED_METHOD`).
pub const RPC_UNSUPPORTED_METHOD: u32 = 1400;
/// Error code for a refusal by the callee's own code (LiveKit's `APPLICATION_ERROR`).
pub const RPC_APPLICATION_ERROR: u32 = 1500;

/// Why a call to a remote method failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcCallError {
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

impl RpcCallError {
    /// A transport failure worth retrying (codes 1501..=1505 or the engine), as opposed to an answer.
    pub fn is_transport(&self) -> bool {
        !matches!(self, RpcCallError::Remote { code, .. } if !(1501..=1505).contains(code))
    }
}

/// An error answer to an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcFailure {
    pub code: u32,
    pub message: String,
}

/// A remote participant's call of one of this participant's methods, to be answered once.
pub struct RpcInvocation {
    engine: &'static Engine,
    local_handle: u64,
    id: u64,
    pub method: String,
    pub caller: String,
    pub payload: String,
}

impl std::fmt::Debug for RpcInvocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcInvocation")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl RpcInvocation {
    pub(crate) fn new(
        engine: &'static Engine,
        local_handle: u64,
        inv: RpcMethodInvocationEvent,
    ) -> Self {
        Self {
            engine,
            local_handle,
            id: inv.invocation_id,
            method: inv.method,
            caller: inv.caller_identity,
            payload: inv.payload,
        }
    }

    /// Answer the call with a payload or an error.
    pub fn respond(self, answer: Result<String, RpcFailure>) -> Result<(), LiveKitError> {
        let (payload, error) = match answer {
            Ok(p) => (Some(p), None),
            Err(f) => (
                None,
                Some(proto::RpcError {
                    code: f.code,
                    message: f.message,
                    data: None,
                }),
            ),
        };
        let req =
            ffi_request::Message::RpcMethodInvocationResponse(RpcMethodInvocationResponseRequest {
                local_participant_handle: self.local_handle,
                invocation_id: self.id,
                payload,
                error,
            });
        self.engine.request(req).map(|_| ())
    }
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
}
