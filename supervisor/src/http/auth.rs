//! The API secret: one shared secret guards everything but /health and /ready (and /metrics unless
//! METRICS_REQUIRE_AUTH). Compared in constant time.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// What the request headers say about the secret.
pub enum HeaderAuth {
    /// No secret is configured, or a header carried the right one.
    Granted,
    /// No credential in the headers (a multipart `api_secret` field may still carry it).
    Missing,
    Denied,
}

pub fn check_headers(expected: Option<&str>, headers: &HeaderMap) -> HeaderAuth {
    let Some(expected) = expected else {
        return HeaderAuth::Granted;
    };
    let presented = headers
        .get("api-secret")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    match presented {
        None => HeaderAuth::Missing,
        Some(p) if secret_matches(expected, p) => HeaderAuth::Granted,
        Some(_) => HeaderAuth::Denied,
    }
}

pub fn secret_matches(expected: &str, presented: &str) -> bool {
    expected
        .as_bytes()
        .ct_eq(presented.trim().as_bytes())
        .into()
}

/// Middleware for routes whose credential can only be in the headers.
pub async fn require_secret(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match check_headers(state.config.api_secret.as_deref(), request.headers()) {
        HeaderAuth::Granted => Ok(next.run(request).await),
        HeaderAuth::Missing | HeaderAuth::Denied => Err(ApiError::unauthorized()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
        h
    }

    #[test]
    fn header_forms() {
        let s = Some("s3cret");
        assert!(matches!(
            check_headers(s, &headers("api-secret", "s3cret")),
            HeaderAuth::Granted
        ));
        assert!(matches!(
            check_headers(s, &headers("authorization", "Bearer s3cret")),
            HeaderAuth::Granted
        ));
        assert!(matches!(
            check_headers(s, &headers("api-secret", "nope")),
            HeaderAuth::Denied
        ));
        assert!(matches!(
            check_headers(s, &HeaderMap::new()),
            HeaderAuth::Missing
        ));
        assert!(matches!(
            check_headers(None, &HeaderMap::new()),
            HeaderAuth::Granted
        ));
        assert!(!secret_matches("s3cret", "s3cre"));
    }
}
