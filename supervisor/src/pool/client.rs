//! The gRPC client of one worker, over its Unix socket, and the contract-version handshake.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use lipcast_proto::worker_client::WorkerClient;
use lipcast_proto::{CONTRACT_VERSION, HealthReply, HealthRequest};
use tonic::transport::{Channel, Endpoint, Uri};

/// Largest gRPC message either side sends (portraits are bounded by the HTTP body limit).
pub const MAX_MESSAGE: usize = 32 * 1024 * 1024;

pub type Client = WorkerClient<Channel>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the worker at {socket}: {reason}")]
    Connect { socket: PathBuf, reason: String },
    #[error(
        "the worker speaks contract version {worker}, this supervisor {CONTRACT_VERSION}: install matching \
         lipcast-supervisor and lipcast-worker binaries"
    )]
    VersionMismatch { worker: u32 },
    #[error("the worker refused the handshake: {0}")]
    Refused(String),
}

/// A channel to the worker listening on `socket` (connects lazily, reconnects on demand).
pub fn channel(socket: &Path) -> Result<Channel, ClientError> {
    let socket = socket.to_path_buf();
    let err = |reason: String| ClientError::Connect {
        socket: socket.clone(),
        reason,
    };
    // The URI is required by the API but unused: the connector below dials the socket.
    let endpoint = Endpoint::try_from("http://lipcast-worker.invalid")
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let path = socket.clone();
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        })),
    )
}

pub fn client(channel: Channel) -> Client {
    WorkerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Calls `Health` with our contract version and checks the worker's.
pub async fn handshake(client: &mut Client) -> Result<HealthReply, ClientError> {
    let reply = client
        .health(HealthRequest {
            contract_version: CONTRACT_VERSION,
        })
        .await
        .map_err(|s| {
            if s.code() == tonic::Code::FailedPrecondition {
                ClientError::Refused(s.message().to_owned())
            } else {
                ClientError::Connect {
                    socket: PathBuf::new(),
                    reason: s.message().to_owned(),
                }
            }
        })?
        .into_inner();
    if reply.contract_version != CONTRACT_VERSION {
        return Err(ClientError::VersionMismatch {
            worker: reply.contract_version,
        });
    }
    Ok(reply)
}
