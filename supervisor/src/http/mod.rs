//! The bitHuman-compatible HTTP API (axum).

pub mod api_doc;
pub mod auth;
pub mod bodies;
pub mod error;
mod health;
mod launch;
pub mod launch_request;
mod ops;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::portrait::fetch::Fetcher;
use crate::sessions::Sessions;
use error::{ApiError, ErrorCode};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub sessions: Sessions,
    pub fetcher: Arc<Fetcher>,
    pub metrics: Metrics,
}

pub fn router(state: AppState) -> Router {
    let guarded = Router::new()
        .route("/tasks", get(tasks::list))
        .route("/tasks/{task_id}", get(tasks::get))
        .route("/tasks/{task_id}/stop", post(tasks::stop))
        .route("/benchmark", post(ops::benchmark))
        .route("/test-frame", get(ops::test_frame))
        .route_layer(from_fn_with_state(state.clone(), auth::require_secret));
    let metrics = if state.config.metrics_require_auth {
        Router::new()
            .route("/metrics", get(ops::metrics))
            .route_layer(from_fn_with_state(state.clone(), auth::require_secret))
    } else {
        Router::new().route("/metrics", get(ops::metrics))
    };
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/openapi.json", get(api_doc::openapi_json))
        // /launch checks the secret itself: multipart may carry it as the `api_secret` field.
        .route("/launch", post(launch::launch))
        .merge(guarded)
        .merge(metrics)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}
