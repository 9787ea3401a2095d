//! API errors: `{"error": "<short code>", "detail": "<human sentence>"}` with the right status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// The live session a `room_busy` refusal is about.
    pub task_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            task_id: None,
        }
    }

    /// A different launch for a room whose avatar already has a live session (`task_id`).
    pub fn room_busy(task_id: String, detail: impl Into<String>) -> Self {
        Self {
            task_id: Some(task_id),
            ..Self::new(StatusCode::CONFLICT, "room_busy", detail)
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API secret is required (header `api-secret`, `Authorization: Bearer`, or field `api_secret`)",
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            detail,
        )
    }

    pub fn not_ready(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", detail)
    }

    pub fn at_capacity(active: u32, max: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "at_capacity",
            format!("{active} of {max} sessions in use"),
        )
    }

    /// A failure of ours (not the caller's): logged, and shown without internals.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{context}; see the server log"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "detail": self.detail});
        if let Some(task_id) = self.task_id {
            body["task_id"] = task_id.into();
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        ApiError::internal("the task store failed", err)
    }
}
