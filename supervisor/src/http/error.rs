//! API errors: `{"error": "<short code>", "detail": "<human sentence>"}` with the right status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::portrait::ResolveError;
use crate::sessions::{LaunchError, Refusal};

/// The short, stable code of an error: what a client branches on (the `detail` sentence is for people).
///
/// - `invalid_request` (400): a field is missing, of the wrong type or out of range.
/// - `invalid_json` (400): a JSON body that does not parse, or is not an object.
/// - `invalid_body` (400): a JSON body that could not be read.
/// - `invalid_multipart` (400): a malformed multipart body.
/// - `invalid_token` (400): `livekit_token` is not a LiveKit token, or is for another room.
/// - `invalid_image` (400): the portrait does not decode, is too large or is refused.
/// - `image_fetch_failed` (400): the portrait URL could not be fetched (or is a private address).
/// - `unknown_avatar` (400): no portrait is stored under that `avatar_id`.
/// - `no_face` (400): no usable face in the portrait.
/// - `unauthorized` (401): the API secret is missing or wrong.
/// - `not_found` (404): no such route or task.
/// - `method_not_allowed` (405): the route does not accept that method.
/// - `room_busy` (409): a different launch for a room whose avatar already has a live session.
/// - `too_large` (413): the body is larger than MAX_BODY_BYTES.
/// - `unsupported_media_type` (415): a launch body that is neither JSON nor multipart.
/// - `not_ready` (503): no prepared worker (the model is loading or failed, or the server is shutting down).
/// - `at_capacity` (503): every session slot is in use.
/// - `unavailable` (503): a failure of the server's own (logged; the detail says where).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidJson,
    InvalidBody,
    InvalidMultipart,
    InvalidToken,
    InvalidImage,
    ImageFetchFailed,
    UnknownAvatar,
    NoFace,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    RoomBusy,
    TooLarge,
    UnsupportedMediaType,
    NotReady,
    AtCapacity,
    Unavailable,
}

impl ErrorCode {
    /// Every code, in the order of the document.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidBody,
        ErrorCode::InvalidMultipart,
        ErrorCode::InvalidToken,
        ErrorCode::InvalidImage,
        ErrorCode::ImageFetchFailed,
        ErrorCode::UnknownAvatar,
        ErrorCode::NoFace,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RoomBusy,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::NotReady,
        ErrorCode::AtCapacity,
        ErrorCode::Unavailable,
    ];

    /// The code as it appears in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidMultipart => "invalid_multipart",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidImage => "invalid_image",
            ErrorCode::ImageFetchFailed => "image_fetch_failed",
            ErrorCode::UnknownAvatar => "unknown_avatar",
            ErrorCode::NoFace => "no_face",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RoomBusy => "room_busy",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::AtCapacity => "at_capacity",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// What went wrong, in a sentence.
    pub detail: String,
    /// With `room_busy`: the task of the live session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// An error answer of a handler: its status and body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
    /// Set only for `room_busy`.
    pub task_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            task_id: None,
        }
    }

    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a valid API secret is required (header `api-secret`, `Authorization: Bearer`, or field `api_secret`)",
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            detail,
        )
    }

    /// 409: the room's avatar already has a live session (`task_id`) that this launch does not match.
    pub fn room_busy(task_id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            task_id: Some(task_id.into()),
            ..Self::new(StatusCode::CONFLICT, ErrorCode::RoomBusy, detail)
        }
    }

    pub fn not_ready(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotReady, detail)
    }

    pub fn at_capacity(active: u32, max: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::AtCapacity,
            format!("{active} of {max} sessions in use"),
        )
    }

    /// A failure of ours (not the caller's): logged, and shown without internals.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!("{context}; see the server log"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            detail: self.detail,
            task_id: self.task_id,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        ApiError::internal("the task store failed", err)
    }
}

impl From<LaunchError> for ApiError {
    fn from(err: LaunchError) -> Self {
        match err {
            LaunchError::ShuttingDown => ApiError::not_ready(err.to_string()),
            LaunchError::AtCapacity { active, max } => ApiError::at_capacity(active, max),
            LaunchError::NotReady(detail) => ApiError::not_ready(detail),
            LaunchError::PortraitRefused { refusal, detail } => ApiError::bad_request(
                match refusal {
                    Refusal::NoFace => ErrorCode::NoFace,
                    Refusal::InvalidImage => ErrorCode::InvalidImage,
                },
                detail,
            ),
            LaunchError::RoomBusy { task_id, detail } => ApiError::room_busy(task_id, detail),
            LaunchError::Internal { context, cause } => ApiError::internal(context, cause),
            LaunchError::Store(e) => e.into(),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(err: ResolveError) -> Self {
        match err {
            ResolveError::FetchFailed(d) => ApiError::bad_request(ErrorCode::ImageFetchFailed, d),
            ResolveError::Invalid(e) => {
                ApiError::bad_request(ErrorCode::InvalidImage, e.to_string())
            }
            ResolveError::UnknownAvatar(d) => ApiError::bad_request(ErrorCode::UnknownAvatar, d),
            ResolveError::Internal { context, cause } => ApiError::internal(context, cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_strings() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(code.as_str()))
            );
        }
    }

    #[test]
    fn task_id_only_when_set() {
        let plain = serde_json::to_value(ErrorBody {
            error: ErrorCode::NotFound,
            detail: "x".into(),
            task_id: None,
        })
        .ok();
        assert_eq!(
            plain,
            Some(serde_json::json!({"error": "not_found", "detail": "x"}))
        );
        let busy = ApiError::room_busy("t1", "busy");
        assert_eq!(
            (busy.status.as_u16(), busy.task_id.as_deref()),
            (409, Some("t1"))
        );
    }
}
