//! The avatar's calls to the agent it serves: playback started and finished (livekit-agents
//! `voice/avatar/_datastream_io.py`, the RPCs its `DataStreamAudioOutput` registers).

use std::time::Duration;

use lipcast_livekit::{RPC_UNSUPPORTED_METHOD, Room, RpcCallError};

use super::types::{PlaybackFinished, RPC_PLAYBACK_FINISHED, RPC_PLAYBACK_STARTED};

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Tell `agent` playback of a segment started. An agent that does not register the method (error 1400,
/// e.g. bitHuman's plugin) is fine.
pub async fn playback_started(room: &Room, agent: &str) -> Result<(), RpcCallError> {
    match room
        .perform_rpc(agent, RPC_PLAYBACK_STARTED, "", RPC_TIMEOUT)
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

/// Tell `agent` a segment finished (or was interrupted). Retried 3 times, 100 ms apart, on transport errors
/// (not on answers).
pub async fn playback_finished(
    room: &Room,
    agent: &str,
    event: PlaybackFinished,
) -> Result<(), RpcCallError> {
    let payload = event.payload();
    let mut attempt = 0;
    loop {
        match room
            .perform_rpc(agent, RPC_PLAYBACK_FINISHED, &payload, RPC_TIMEOUT)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if !e.is_transport() || attempt == 2 => return Err(e),
            Err(_) => {}
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
