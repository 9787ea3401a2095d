//! `/health` (liveness: 200 as soon as the process listens) and `/ready` (readiness for load balancers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;

pub async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let active = state.sessions.active_count().await?;
    Ok(Json(json!({
        "status": "healthy",
        "active_sessions": active,
        "max_sessions": state.config.max_sessions,
    })))
}

pub async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    let max = state.config.max_sessions;
    let active = state.sessions.active_count().await?;
    let model_ready = state.sessions.model_ready();
    let status = if !model_ready || state.sessions.shutting_down() {
        "not_ready"
    } else if active >= max {
        "at_capacity"
    } else {
        "ready"
    };
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": status,
        "model_ready": model_ready,
        "active_sessions": active,
        "available_sessions": max.saturating_sub(active),
        "max_sessions": max,
    });
    // Why the model is not ready (a pack downloading or failed, a worker that cannot load it).
    if status == "not_ready"
        && let Some(why) = state.sessions.pool().not_ready_reason()
    {
        body["detail"] = why.into();
    }
    Ok((code, Json(body)).into_response())
}
