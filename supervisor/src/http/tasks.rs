//! `/tasks`, `/tasks/{id}` and `/tasks/{id}/stop`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::store::Task;

pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let tasks = state.sessions.store().list().await?;
    Ok(Json(json!({ "tasks": tasks })))
}

pub async fn get(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<Task>, ApiError> {
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
    Path(task_id): Path<String>,
) -> Result<Json<Task>, ApiError> {
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
