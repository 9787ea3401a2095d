//! `POST /launch`: authenticate, parse (JSON or multipart), validate, check the portrait, admit.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::{self, HeaderAuth};
use super::bodies::{LaunchAccepted, LaunchAnswer, LaunchForm, LaunchJson};
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::launch_request::{self, LaunchRequest, RawLaunch};
use crate::portrait;
use crate::portrait::ImageSource;
use crate::sessions::Launch;
use crate::token;

#[utoipa::path(post, path = "/launch", tag = "sessions",
    summary = "Start an avatar session in a LiveKit room",
    description = "Idempotent per room and avatar identity (the plugin retries): the launch of a session \
        that is already live answers with that session. The secret may also come as the `api_secret` field.",
    params(
        ("async" = Option<bool>, Query, description = "false: answer once the session has ended \
            (the body field `async_mode` wins over it)"),
        ("async_mode" = Option<bool>, Query, description = "Same as `async`"),
    ),
    request_body(content(
        (LaunchJson = "application/json"),
        (LaunchForm = "multipart/form-data"),
    )),
    security(("api_secret" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Asynchronous (the default): the admitted launch. With \
            `async_mode=false`: the task once its session has ended.", body = LaunchAnswer),
        (status = 400, description = "`invalid_request`, `invalid_json`, `invalid_body`, `invalid_multipart`, \
            `invalid_token`, `invalid_image`, `image_fetch_failed`, `unknown_avatar` or `no_face`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 409, description = "`room_busy`: a different launch for a room whose avatar already has a \
            live session; `task_id` names that session", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is larger than MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither JSON nor multipart", body = ErrorBody),
        (status = 503, description = "`not_ready` (no prepared worker, shutting down), `at_capacity` or \
            `unavailable`", body = ErrorBody),
    ))]
pub async fn launch(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    // Every launch is counted once, by how it ended (lipcast_launches_total{result}).
    let result = launch_inner(&state, request).await;
    let label = match &result {
        Ok((_, created)) if *created => "accepted",
        Ok(_) => "existing",
        Err(e) if e.code == ErrorCode::AtCapacity => "at_capacity",
        Err(e) if e.status.is_client_error() => "rejected",
        Err(_) => "error",
    };
    state.metrics.launch(label);
    result.map(|(response, _)| response)
}

/// The launch itself; `true` when it started a new session (not the active one of the same room and avatar).
async fn launch_inner(state: &AppState, request: Request) -> Result<(Response, bool), ApiError> {
    let secret = state.config.api_secret.clone();
    let header_auth = auth::check_headers(secret.as_deref(), request.headers());
    if matches!(header_auth, HeaderAuth::Denied) {
        return Err(ApiError::unauthorized());
    }
    let query_async = query_async(request.uri().query())?;
    let raw = read_body(state, request).await?;
    if let (HeaderAuth::Missing, Some(expected)) = (header_auth, secret.as_deref()) {
        let field_ok = raw
            .api_secret
            .as_deref()
            .is_some_and(|p| auth::secret_matches(expected, p));
        if !field_ok {
            return Err(ApiError::unauthorized());
        }
    }
    let req = launch_request::validate(raw, query_async)?;
    let claims = token::read_claims(&req.livekit_token)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidToken, e.to_string()))?;
    if let Some(room) = claims
        .room
        .as_deref()
        .filter(|r| !r.is_empty() && *r != req.room_name)
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidToken,
            format!(
                "livekit_token is for room {room:?}, not room_name {:?}",
                req.room_name
            ),
        ));
    }
    if state.sessions.shutting_down() {
        return Err(ApiError::not_ready("the server is shutting down"));
    }
    let LaunchRequest {
        livekit_url,
        livekit_token,
        room_name,
        image,
        avatar_id,
        prompt,
        model,
        mode,
        async_mode,
    } = req;
    // What makes a repeated launch a replay: the same portrait URL, else the same bytes.
    let url_key = match &image {
        Some(ImageSource::Url(url)) => Some(portrait::sha256_hex(format!("url:{url}").as_bytes())),
        _ => None,
    };
    let portrait = portrait::resolve(
        image,
        avatar_id.as_deref(),
        &state.config.avatars_dir(),
        &state.fetcher,
        state.config.max_image_pixels,
    )
    .await?;
    let portrait_key =
        url_key.or_else(|| portrait.as_ref().map(|p| portrait::sha256_hex(&p.bytes)));
    let (launched, created) = state
        .sessions
        .launch(Launch {
            livekit_url,
            livekit_token,
            room_name,
            identity: claims.identity,
            portrait,
            portrait_key,
            avatar_id,
            prompt,
            model,
            mode,
        })
        .await?;
    if async_mode {
        let body = LaunchAccepted {
            status: launched.status,
            task_id: launched.task_id,
            room_name: launched.room_name,
        };
        return Ok((Json(body).into_response(), created));
    }
    let done = state
        .sessions
        .wait_ended(&launched.task_id, state.config.max_session())
        .await?
        .unwrap_or(launched);
    Ok((Json(done).into_response(), created))
}

fn query_async(query: Option<&str>) -> Result<Option<bool>, ApiError> {
    let Some(query) = query else { return Ok(None) };
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "async" || k == "async_mode")
        .map(|(_, v)| launch_request::parse_bool("async", &v))
        .transpose()
}

async fn read_body(state: &AppState, request: Request) -> Result<RawLaunch, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(format!(
                        "request body is larger than {} bytes",
                        state.config.max_body_bytes
                    ))
                } else {
                    ApiError::bad_request(ErrorCode::InvalidBody, rejection.body_text())
                }
            })?;
        launch_request::parse_json(&body)
    } else if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, state)
            .await
            .map_err(|r| ApiError::bad_request(ErrorCode::InvalidMultipart, r.body_text()))?;
        launch_request::parse_multipart(form).await
    } else {
        Err(ApiError::unsupported_media_type(
            "send application/json or multipart/form-data",
        ))
    }
}
