//! `/health` (liveness: 200 as soon as the process listens) and `/ready` (readiness for load balancers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::bodies::{Health, HealthStatus, Ready, ReadyStatus};

#[utoipa::path(get, path = "/health", tag = "probes",
    summary = "Liveness: 200 as soon as the process listens",
    responses(
        (status = 200, description = "The process is up", body = Health),
    ))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: HealthStatus::Healthy,
        active_sessions: state.sessions.active_count(),
        max_sessions: state.config.max_sessions,
    })
}

#[utoipa::path(get, path = "/ready", tag = "probes",
    summary = "Readiness: 200 while a launch would be taken",
    responses(
        (status = 200, description = "`ready`: a worker has verified the model and a slot is free", body = Ready),
        (status = 503, description = "`not_ready` (with a `detail` when the reason is known) or \
            `at_capacity`", body = Ready),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let max = state.config.max_sessions;
    let active = state.sessions.active_count();
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
    (code, Json(body)).into_response()
}
