//! `/tasks`, `/tasks/{id}` and `/tasks/{id}/stop`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use super::AppState;
use super::bodies::TaskList;
use super::error::{ApiError, ErrorBody};
use crate::store::Task;

#[utoipa::path(get, path = "/tasks", operation_id = "list_tasks", tag = "tasks",
    summary = "Every task kept: the active ones, and the finished ones until pruned",
    security(("api_secret" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The tasks, newest first", body = TaskList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the task store failed", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<TaskList>, ApiError> {
    let tasks = state.sessions.store().list().await?;
    Ok(Json(TaskList { tasks }))
}

/// The `{task_id}` of the route; one that does not even decode (bad percent-encoding, not UTF-8) names
/// no task.
fn task_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::not_found("no such task"))
}

#[utoipa::path(get, path = "/tasks/{task_id}", operation_id = "get_task", tag = "tasks",
    summary = "One task, with its live figures while it runs",
    params(("task_id" = String, Path, description = "The task's id, as `POST /launch` answered it")),
    security(("api_secret" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such task", body = ErrorBody),
        (status = 503, description = "`unavailable`: the task store failed", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/tasks/{task_id}/stop", operation_id = "stop_task", tag = "tasks",
    summary = "End a session (`cancelled`); the slot is free at once",
    description = "A task that has already ended is returned unchanged.",
    params(("task_id" = String, Path, description = "The task's id, as `POST /launch` answered it")),
    security(("api_secret" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The task, ended", body = Task),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such task", body = ErrorBody),
        (status = 503, description = "`unavailable`: the task store failed", body = ErrorBody),
    ))]
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
