//! `/tasks`, `/tasks/{id}` and `/tasks/{id}/stop`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::store::Task;

pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let tasks = state.sessions.store().list().await?;
    Ok(Json(json!({ "tasks": tasks })))
}

/// The `{task_id}` of the route; one that does not even decode (bad percent-encoding, not UTF-8) names
/// no task.
fn task_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::not_found("no such task"))
}

pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Task>, ApiError> {
    let task_id = task_id(path)?;
    let mut task = state
        .sessions
        .store()
        .get(&task_id)
        .await?
        .ok_or_else(|| unknown(&task_id))?;
    if let Some(live) = state.sessions.live_stats(&task_id) {
        task.stats = Some(live);
    }
    Ok(Json(task))
}

/// Ends the session (`cancelled`); on a task that already ended, returns it unchanged.
pub async fn stop(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Task>, ApiError> {
    let task_id = task_id(path)?;
    state
        .sessions
        .stop(&task_id)
        .await?
        .map(Json)
        .ok_or_else(|| unknown(&task_id))
}

fn unknown(task_id: &str) -> ApiError {
    let shown: String = task_id.chars().take(64).collect();
    ApiError::not_found(format!("no task {shown:?}"))
}
