//! `/health` (liveness: 200 as soon as the process listens) and `/ready` (readiness for load balancers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::bodies::{Health, HealthStatus, Ready, ReadyStatus, ReadyUnavailable};
use super::error::{ApiError, ErrorBody};

#[utoipa::path(get, path = "/health", tag = "probes",
    summary = "Liveness: 200 as soon as the process listens",
    responses(
        (status = 200, description = "The process is up", body = Health),
        (status = 503, description = "`unavailable`: the task store failed", body = ErrorBody),
    ))]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let active = state.sessions.active_count().await?;
    Ok(Json(Health {
        status: HealthStatus::Healthy,
        active_sessions: active,
        max_sessions: state.config.max_sessions,
    }))
}

#[utoipa::path(get, path = "/ready", tag = "probes",
    summary = "Readiness: 200 while a launch would be taken",
    responses(
        (status = 200, description = "`ready`: a worker has verified the model and a slot is free", body = Ready),
        (status = 503, description = "`not_ready` (with a `detail` when the reason is known) or \
            `at_capacity`; or an error body when the task store failed", body = ReadyUnavailable),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    let max = state.config.max_sessions;
    let active = state.sessions.active_count().await?;
    let model_ready = state.sessions.model_ready();
    let status = if !model_ready || state.sessions.shutting_down() {
        ReadyStatus::NotReady
    } else if active >= max {
        ReadyStatus::AtCapacity
    } else {
        ReadyStatus::Ready
    };
    let code = if status == ReadyStatus::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Why the model is not ready (a pack downloading or failed, a worker that cannot load it).
    let detail = if status == ReadyStatus::NotReady {
        state.sessions.pool().not_ready_reason()
    } else {
        None
    };
    let body = Ready {
        status,
        model_ready,
        active_sessions: active,
        available_sessions: max.saturating_sub(active),
        max_sessions: max,
        detail,
        warning: state.sessions.pool().slow_warning(),
    };
    Ok((code, Json(body)).into_response())
}
