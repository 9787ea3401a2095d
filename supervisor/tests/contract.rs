//! The contract version is checked both ways: the supervisor refuses a worker of another version, and a real
//! worker refuses a supervisor of another version.

use std::time::Duration;

use lipcast_proto::worker_server::{Worker, WorkerServer};
use lipcast_proto::*;
use lipcast_supervisor::pool::client::{self, ClientError};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// A test double: a "worker" of contract version 999 that answers Health only.
struct OtherVersion;

type Stream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl Worker for OtherVersion {
    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthReply>, Status> {
        Ok(Response::new(HealthReply {
            contract_version: 999,
            ..Default::default()
        }))
    }
    async fn prepare(&self, _: Request<PrepareRequest>) -> Result<Response<PrepareReply>, Status> {
        Err(Status::unimplemented("double"))
    }
    async fn start_session(
        &self,
        _: Request<StartSessionRequest>,
    ) -> Result<Response<StartSessionReply>, Status> {
        Err(Status::unimplemented("double"))
    }
    async fn check_portrait(
        &self,
        _: Request<CheckPortraitRequest>,
    ) -> Result<Response<CheckPortraitReply>, Status> {
        Err(Status::unimplemented("double"))
    }
    type EventsStream = Stream;
    async fn events(&self, _: Request<EventsRequest>) -> Result<Response<Stream>, Status> {
        Err(Status::unimplemented("double"))
    }
    async fn stop(&self, _: Request<StopRequest>) -> Result<Response<StopReply>, Status> {
        Err(Status::unimplemented("double"))
    }
    async fn benchmark(
        &self,
        _: Request<BenchmarkRequest>,
    ) -> Result<Response<BenchmarkReply>, Status> {
        Err(Status::unimplemented("double"))
    }
    async fn test_frame(
        &self,
        _: Request<TestFrameRequest>,
    ) -> Result<Response<TestFrameReply>, Status> {
        Err(Status::unimplemented("double"))
    }
}

#[tokio::test]
async fn supervisor_refuses_a_worker_of_another_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("w.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WorkerServer::new(OtherVersion))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    let mut c = client::client(client::channel(&socket).expect("channel"));
    let err = client::handshake(&mut c).await.expect_err("must refuse");
    assert!(
        matches!(err, ClientError::VersionMismatch { worker: 999 }),
        "{err}"
    );
    assert!(
        err.to_string().contains("999") && err.to_string().contains(&CONTRACT_VERSION.to_string())
    );
}

#[tokio::test]
async fn a_real_worker_refuses_a_supervisor_of_another_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("w.sock");
    let bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/lipcast-worker");
    let bin = if bin.is_file() {
        bin
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/lipcast-worker")
    };
    assert!(
        bin.is_file(),
        "build lipcast-worker first (cargo build --release --bins)"
    );
    let mut child = tokio::process::Command::new(bin)
        .args(["serve", "--socket"])
        .arg(&socket)
        .kill_on_drop(true)
        .spawn()
        .expect("worker starts");
    let mut c = client::client(client::channel(&socket).expect("channel"));
    let mut answer = None;
    for _ in 0..200 {
        match c
            .health(HealthRequest {
                contract_version: CONTRACT_VERSION + 1,
            })
            .await
        {
            Err(s) if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::Unknown => {
                tokio::time::sleep(Duration::from_millis(25)).await
            }
            other => {
                answer = Some(other);
                break;
            }
        }
    }
    let status = answer
        .expect("the worker answered")
        .expect_err("must refuse");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("contract version mismatch"),
        "{}",
        status.message()
    );
    // Stop the idle worker: it exits by itself.
    c.stop(StopRequest {
        reason: "test".into(),
    })
    .await
    .expect("stop");
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(exit.success(), "{exit}");
}
