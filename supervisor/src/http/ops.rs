//! `/benchmark` and `/test-frame`: both run on a prepared, idle worker (taken from the warm pool, or started
//! for the request) and return it afterwards. No worker, no numbers: 503, never invented figures.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lipcast_proto::{BenchmarkRequest, TestFrameRequest};

use super::AppState;
use super::bodies::{Benchmark, Jpeg};
use super::error::{ApiError, ErrorBody, ErrorCode};
use crate::pool::client::Client;

/// Upper bound on `iterations` (the worker clamps to the same).
const MAX_ITERATIONS: u32 = 2_000;

/// Runs `call` on an idle prepared worker (a warm one, or one started for it) and gives the worker back to
/// the pool afterwards. No worker: 503, never invented figures.
async fn on_idle_worker<T, F, Fut>(
    state: &AppState,
    call: F,
) -> Result<Result<tonic::Response<T>, tonic::Status>, ApiError>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    if state.sessions.shutting_down() {
        return Err(ApiError::not_ready("the server is shutting down"));
    }
    let within = std::time::Duration::from_secs(state.config.launch_timeout_seconds.max(1) * 3);
    let pool = state.sessions.pool();
    let (ready, _) = pool
        .acquire(within)
        .await
        .map_err(|e| ApiError::not_ready(format!("no prepared worker: {e}")))?;
    let answer = call(ready.worker.client.clone()).await;
    pool.give_back(ready).await;
    Ok(answer)
}

#[utoipa::path(post, path = "/benchmark", tag = "operations",
    summary = "Time the render pipeline on a prepared worker",
    params(("iterations" = Option<u32>, Query, minimum = 1, maximum = 2000,
        description = "Frames to render (default 100)")),
    security(("api_secret" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The measured figures", body = Benchmark),
        (status = 400, description = "`invalid_request`: `iterations` out of range", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`not_ready`: no prepared worker; `unavailable`: the benchmark failed",
            body = ErrorBody),
    ))]
pub async fn benchmark(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Benchmark>, ApiError> {
    // Parsed by hand: a typed `Query` would answer odd query strings with a plain-text rejection.
    let iterations = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "iterations")
            .map(|(_, v)| v.into_owned())
    });
    let iterations = match iterations.as_deref().map(str::trim) {
        None | Some("") => 100,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_ITERATIONS).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidRequest,
                    format!("`iterations` must be a whole number from 1 to {MAX_ITERATIONS}"),
                )
            })?,
    };
    let r = on_idle_worker(&state, |mut c| async move {
        c.benchmark(BenchmarkRequest { iterations }).await
    })
    .await?
    .map_err(|s| ApiError::internal("the benchmark failed", s.message()))?
    .into_inner();
    Ok(Json(Benchmark {
        iterations: r.iterations,
        frames_per_generate: r.frames_per_generate,
        avg_ms: r.avg_ms,
        fps: r.fps,
        vram_gb: r.vram_gb,
        gpu: Some(r.gpu).filter(|g| !g.is_empty()),
        device: r.device,
        cpu: r.cpu,
        stages_ms: r.stages.into_iter().map(|s| (s.name, s.avg_ms)).collect(),
        width: r.width,
        height: r.height,
    }))
}

#[utoipa::path(get, path = "/test-frame", tag = "operations",
    summary = "A rendered JPEG of the default portrait mid-speech",
    security(("api_secret" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The frame", content_type = "image/jpeg", body = Jpeg),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`not_ready`: no prepared worker; `unavailable`: rendering failed",
            body = ErrorBody),
    ))]
pub async fn test_frame(State(state): State<AppState>) -> Result<Response, ApiError> {
    let r = on_idle_worker(&state, |mut c| async move {
        c.test_frame(TestFrameRequest {}).await
    })
    .await?
    .map_err(|s| ApiError::internal("rendering the test frame failed", s.message()))?
    .into_inner();
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], r.jpeg).into_response())
}

/// `GET /metrics`: Prometheus (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics (OpenMetrics text)",
    description = "Open unless the server runs with `METRICS_REQUIRE_AUTH=true`; then the API secret is \
        required as on the other guarded routes.",
    security((), ("api_secret" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The exposition",
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "`unauthorized` (only with `METRICS_REQUIRE_AUTH=true`)", body = ErrorBody),
        (status = 503, description = "`unavailable`: encoding the metrics failed", body = ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .metrics
        .warm_workers
        .set(i64::try_from(state.sessions.pool().idle_count()).unwrap_or(i64::MAX));
    let body = state
        .metrics
        .encode()
        .map_err(|e| ApiError::internal("encoding metrics failed", e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
