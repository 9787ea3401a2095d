//! The worker's gRPC service: its state machine (starting -> prepared -> in session -> ending) and the one
//! event stream the supervisor reads.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use lipcast_proto::worker_server::Worker;
use lipcast_proto::{
    BenchmarkReply, BenchmarkRequest, CONTRACT_VERSION, CheckPortraitReply, CheckPortraitRequest,
    ERROR_CODE_KEY, Event, EventsRequest, HealthReply, HealthRequest, PortraitRefusal,
    PrepareReply, PrepareRequest, StartSessionReply, StartSessionRequest, StopReply, StopRequest,
    TestFrameReply, TestFrameRequest, VideoCodec, WorkerState, event,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_stream::Stream;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::bench;
use super::prepared::Prepared;
use crate::avatar::PrepareError;
use crate::session::{self, SessionEvent, SessionSpec, Settings};
use lipcast_livekit::VideoCodecChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Prepared,
    InSession,
    Ending,
}

/// State shared by the service and the session task.
pub struct Shared {
    phase: Mutex<Phase>,
    prepared: OnceLock<Arc<Prepared>>,
    events_tx: Mutex<Option<UnboundedSender<Event>>>,
    events_rx: Mutex<Option<UnboundedReceiver<Event>>>,
    session_stop: Mutex<Option<CancellationToken>>,
    /// Cancelled when the worker should exit (its server shuts down).
    exit: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(exit: CancellationToken) -> Arc<Self> {
        let (tx, rx) = unbounded_channel();
        Arc::new(Self {
            phase: Mutex::new(Phase::Starting),
            prepared: OnceLock::new(),
            events_tx: Mutex::new(Some(tx)),
            events_rx: Mutex::new(Some(rx)),
            session_stop: Mutex::new(None),
            exit,
        })
    }

    fn emit(&self, kind: event::Kind) {
        if let Some(tx) = lock(&self.events_tx).as_ref() {
            let _ = tx.send(Event { kind: Some(kind) });
        }
    }

    /// Last event: the session (or the idle worker) is over. Closes the stream and lets the server exit.
    fn end(&self, reason: lipcast_proto::EndReason, error: Option<String>) {
        *lock(&self.phase) = Phase::Ending;
        self.emit(event::Kind::Ended(lipcast_proto::Ended {
            reason: reason.into(),
            error: error.unwrap_or_default(),
        }));
        lock(&self.events_tx).take();
        self.exit.cancel();
    }

    fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    /// Ends the session (it reports `stopped`), or, when there is none, the worker.
    pub fn stop(&self, reason: &str) {
        let phase = self.phase();
        tracing::info!(?phase, %reason, "stop requested");
        match phase {
            Phase::InSession => {
                if let Some(stop) = lock(&self.session_stop).as_ref() {
                    stop.cancel();
                }
            }
            Phase::Starting | Phase::Prepared => self.end(lipcast_proto::EndReason::Stopped, None),
            Phase::Ending => {}
        }
    }
}

pub struct WorkerService {
    shared: Arc<Shared>,
}

impl WorkerService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn prepared(&self) -> Result<Arc<Prepared>, Status> {
        self.shared.prepared.get().cloned().ok_or_else(|| {
            Status::failed_precondition("the model pack is not loaded yet (call Prepare)")
        })
    }

    /// For Benchmark and TestFrame: only while idle, so they never take CPU from a session.
    fn idle_prepared(&self) -> Result<Arc<Prepared>, Status> {
        match self.shared.phase() {
            Phase::Prepared => self.prepared(),
            Phase::Starting => Err(Status::failed_precondition(
                "the model pack is not loaded yet",
            )),
            Phase::InSession | Phase::Ending => Err(Status::failed_precondition(
                "this worker is serving a session",
            )),
        }
    }
}

/// A portrait the worker cannot use, as the answer the supervisor turns into the caller's 4xx (or a 5xx when
/// the fault is ours).
fn portrait_refusal(err: PrepareError) -> Status {
    match err {
        PrepareError::NoFaceDetected => refusal(PortraitRefusal::NoFace, "No face detected".into()),
        PrepareError::Unusable(why) => refusal(PortraitRefusal::UnusablePortrait, why),
        PrepareError::Decode(e) => refusal(
            PortraitRefusal::InvalidImage,
            format!("could not decode the portrait: {e}"),
        ),
        e @ PrepareError::Model(_) => Status::internal(e.to_string()),
    }
}

fn refusal(code: PortraitRefusal, message: String) -> Status {
    let mut status = Status::invalid_argument(message);
    status.metadata_mut().insert(
        ERROR_CODE_KEY,
        tonic::metadata::MetadataValue::from_static(code.as_str_name()),
    );
    status
}

fn settings_from(req: Option<&lipcast_proto::SessionSettings>, fps: u32) -> Settings {
    let d = Settings::default();
    let Some(s) = req else {
        return Settings { fps, ..d };
    };
    let secs = |v: u32| (v > 0).then(|| Duration::from_secs(u64::from(v)));
    Settings {
        idle_timeout: secs(s.idle_timeout_s),
        max_duration: secs(s.max_duration_s),
        agent_join_timeout: secs(s.agent_join_timeout_s).unwrap_or(d.agent_join_timeout),
        connect_timeout: secs(s.connect_timeout_s).unwrap_or(d.connect_timeout),
        video_max_bitrate: if s.video_max_bitrate > 0 {
            s.video_max_bitrate
        } else {
            d.video_max_bitrate
        },
        video_codec: match s.video_codec() {
            VideoCodec::Vp8 => VideoCodecChoice::Vp8,
            VideoCodec::H264 => VideoCodecChoice::H264,
        },
        audio_sample_rate: match s.audio_sample_rate {
            8_000..=48_000 => s.audio_sample_rate,
            _ => d.audio_sample_rate,
        },
        fps,
    }
}

fn session_event(ev: SessionEvent) -> event::Kind {
    use lipcast_proto as p;
    match ev {
        SessionEvent::Joined {
            join_ms,
            video_codec,
        } => event::Kind::Joined(p::Joined {
            join_ms,
            video_codec: match video_codec {
                VideoCodecChoice::H264 => VideoCodec::H264,
                VideoCodecChoice::Vp8 => VideoCodec::Vp8,
            }
            .into(),
        }),
        SessionEvent::FirstFrame { since_start_ms } => {
            event::Kind::FirstFrame(p::FirstFrame { since_start_ms })
        }
        SessionEvent::AgentJoined { identity } => {
            event::Kind::AgentJoined(p::AgentJoined { identity })
        }
        SessionEvent::SegmentStarted {
            segment,
            sample_rate,
            channels,
        } => event::Kind::SegmentStarted(p::SegmentStarted {
            segment,
            sample_rate,
            num_channels: channels,
        }),
        SessionEvent::SegmentFinished {
            segment,
            position_s,
            interrupted,
        } => event::Kind::SegmentFinished(p::SegmentFinished {
            segment,
            position_s,
            interrupted,
        }),
        SessionEvent::Stats(s) => event::Kind::Stats(p::Stats {
            frames: s.frames,
            dropped_frames: s.dropped_frames,
            late_frames: s.late_frames,
            frame_interval_ms: s.frame_interval_ms,
            audio_to_mouth_ms: s.audio_to_mouth_ms,
            av_offset_ms: s.av_offset_ms,
            render_ms_per_frame: s.render_ms_per_frame,
            rss_bytes: s.rss_bytes,
            cpu_seconds: s.cpu_seconds,
        }),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn health(
        &self,
        request: Request<HealthRequest>,
    ) -> Result<Response<HealthReply>, Status> {
        let theirs = request.get_ref().contract_version;
        if theirs != CONTRACT_VERSION {
            return Err(Status::failed_precondition(format!(
                "contract version mismatch: the supervisor speaks {theirs}, this worker {CONTRACT_VERSION}"
            )));
        }
        let state = match self.shared.phase() {
            Phase::Starting => WorkerState::Starting,
            Phase::Prepared => WorkerState::Prepared,
            Phase::InSession => WorkerState::InSession,
            Phase::Ending => WorkerState::Ending,
        };
        Ok(Response::new(HealthReply {
            contract_version: CONTRACT_VERSION,
            worker_version: env!("CARGO_PKG_VERSION").into(),
            state: state as i32,
            pid: std::process::id(),
            rss_bytes: crate::procstat::rss_bytes(),
            cpu_seconds: crate::procstat::cpu_seconds(),
        }))
    }

    async fn prepare(
        &self,
        request: Request<PrepareRequest>,
    ) -> Result<Response<PrepareReply>, Status> {
        if let Some(p) = self.shared.prepared.get() {
            return Ok(Response::new(p.reply.clone()));
        }
        let req = request.into_inner();
        let loaded = tokio::task::spawn_blocking(move || Prepared::load(&req))
            .await
            .map_err(|e| Status::internal(format!("loading the model pack panicked: {e}")))?;
        let prepared = match loaded {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::error!(error = %e, "model pack not usable");
                return Err(Status::failed_precondition(e.to_string()));
            }
        };
        let reply = prepared.reply.clone();
        let _ = self.shared.prepared.set(prepared);
        {
            let mut phase = lock(&self.shared.phase);
            if *phase == Phase::Starting {
                *phase = Phase::Prepared;
            }
        }
        tracing::info!(
            device = reply.device().name(), pack = %reply.pack_name, load_ms = reply.load_ms,
            warmup_ms = reply.warmup_ms, frames_per_second = reply.frames_per_second,
            session_fps = reply.session_fps, "model pack loaded and warmed up"
        );
        Ok(Response::new(reply))
    }

    async fn start_session(
        &self,
        request: Request<StartSessionRequest>,
    ) -> Result<Response<StartSessionReply>, Status> {
        let requested_at = Instant::now();
        let prepared = self.prepared()?;
        {
            let mut phase = lock(&self.shared.phase);
            if *phase != Phase::Prepared {
                return Err(Status::failed_precondition("this worker is not idle"));
            }
            *phase = Phase::InSession;
        }
        let req = request.into_inner();
        let span = tracing::info_span!("session", task_id = %req.task_id, room = %req.room_name);
        let portrait_bytes = req.portrait;
        let p = prepared.clone();
        let portrait =
            tokio::task::spawn_blocking(move || p.prepare_portrait(&portrait_bytes)).await;
        let portrait = match portrait {
            Ok(Ok(portrait)) => portrait,
            Ok(Err(e)) => {
                // Nothing started: the worker stays prepared for another launch.
                *lock(&self.shared.phase) = Phase::Prepared;
                return Err(portrait_refusal(e));
            }
            Err(e) => {
                *lock(&self.shared.phase) = Phase::Prepared;
                return Err(Status::internal(format!(
                    "portrait preparation panicked: {e}"
                )));
            }
        };
        let prepare_ms = requested_at.elapsed().as_secs_f64() * 1e3;
        let settings = settings_from(req.settings.as_ref(), prepared.fps());
        let seed = req.settings.as_ref().map_or(0, |s| s.seed);
        let animator = match prepared.animator(&portrait, seed) {
            Ok(a) => a,
            Err(e) => {
                *lock(&self.shared.phase) = Phase::Prepared;
                return Err(Status::internal(e.to_string()));
            }
        };
        let (width, height) = (portrait.width(), portrait.height());
        let spec = SessionSpec {
            livekit_url: req.livekit_url,
            livekit_token: req.livekit_token,
            settings,
            requested_at,
        };
        let stop = CancellationToken::new();
        *lock(&self.shared.session_stop) = Some(stop.clone());
        let shared = self.shared.clone();
        span.in_scope(|| {
            tracing::info!(
                width,
                height,
                prepare_ms,
                "portrait prepared; joining the room"
            )
        });
        tokio::spawn(
            async move {
                let (ev_tx, mut ev_rx) = unbounded_channel();
                let forward = {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        while let Some(ev) = ev_rx.recv().await {
                            shared.emit(session_event(ev));
                        }
                    })
                };
                let outcome = session::run(spec, animator, ev_tx, stop).await;
                let _ = forward.await;
                match &outcome.error {
                    Some(e) => {
                        tracing::warn!(reason = ?outcome.reason, error = %e, "session ended")
                    }
                    None => tracing::info!(reason = ?outcome.reason, "session ended"),
                }
                shared.end(outcome.reason, outcome.error);
            }
            .instrument(span),
        );
        Ok(Response::new(StartSessionReply {}))
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        _: Request<EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let rx = lock(&self.shared.events_rx).take().ok_or_else(|| {
            Status::failed_precondition("the event stream already has its subscriber")
        })?;
        let stream = UnboundedReceiverStream::new(rx);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            stream, Ok,
        ))))
    }

    async fn check_portrait(
        &self,
        request: Request<CheckPortraitRequest>,
    ) -> Result<Response<CheckPortraitReply>, Status> {
        let prepared = self.prepared()?;
        let bytes = request.into_inner().portrait;
        let checked = tokio::task::spawn_blocking(move || prepared.prepare_portrait(&bytes))
            .await
            .map_err(|e| Status::internal(format!("portrait check panicked: {e}")))?;
        checked.map_err(portrait_refusal)?;
        Ok(Response::new(CheckPortraitReply {}))
    }

    async fn stop(&self, request: Request<StopRequest>) -> Result<Response<StopReply>, Status> {
        self.shared.stop(&request.into_inner().reason);
        Ok(Response::new(StopReply {}))
    }

    async fn benchmark(
        &self,
        request: Request<BenchmarkRequest>,
    ) -> Result<Response<BenchmarkReply>, Status> {
        let prepared = self.idle_prepared()?;
        let iterations = request.into_inner().iterations;
        let reply = tokio::task::spawn_blocking(move || bench::benchmark(&prepared, iterations))
            .await
            .map_err(|e| Status::internal(format!("benchmark panicked: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(reply))
    }

    async fn test_frame(
        &self,
        _: Request<TestFrameRequest>,
    ) -> Result<Response<TestFrameReply>, Status> {
        let prepared = self.idle_prepared()?;
        let reply = tokio::task::spawn_blocking(move || bench::test_frame(&prepared))
            .await
            .map_err(|e| Status::internal(format!("test frame panicked: {e}")))?
            .map_err(|e| Status::internal(format!("encoding the test frame: {e}")))?;
        Ok(Response::new(reply))
    }
}
