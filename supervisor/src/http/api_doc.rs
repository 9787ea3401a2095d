//! The OpenAPI 3.1 document of the HTTP API, assembled from the handlers' annotations and the body types,
//! so it follows the code. Served at `GET /openapi.json`, printed by `lipcast-supervisor --openapi`, and
//! committed as `docs/openapi.json` (a test fails when that file is stale).

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::bodies::{
    Benchmark, Health, HealthStatus, Jpeg, LaunchAccepted, LaunchAnswer, LaunchForm, LaunchJson,
    Ready, ReadyStatus, TaskList,
};
use super::error::{ErrorBody, ErrorCode};
use super::{health, launch, ops, tasks};
use crate::store::{Status, Task};

/// The document: every route, body and error code of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lipcast",
        description = "The HTTP API of lipcast-supervisor, a self-hosted real-time talking-avatar server for \
            LiveKit (compatible with bitHuman's expression-avatar container).\n\n\
            Every error is JSON, `{\"error\": \"<code>\", \"detail\": \"<sentence>\"}` (`ErrorBody`). Any \
            route answers 404 `not_found` for an unknown path and 405 `method_not_allowed` for a method it \
            does not take.\n\n\
            When the server runs with `API_SECRET`, the secret is required on `/launch`, `/tasks*`, \
            `/benchmark` and `/test-frame` (and `/metrics` with `METRICS_REQUIRE_AUTH=true`), as the \
            `api-secret` header, `Authorization: Bearer`, or (multipart launches) the `api_secret` field. \
            Without it the API is open.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::health,
        health::ready,
        launch::launch,
        tasks::list,
        tasks::get,
        tasks::stop,
        ops::benchmark,
        ops::test_frame,
        ops::metrics,
        openapi_json,
    ),
    components(schemas(
        ErrorBody, ErrorCode, Health, HealthStatus, Ready, ReadyStatus, LaunchJson,
        LaunchForm, LaunchAccepted, LaunchAnswer, Task, Status, TaskList, Benchmark, Jpeg,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "probes", description = "Liveness and readiness, always open"),
        (name = "sessions", description = "Starting avatar sessions"),
        (name = "tasks", description = "The sessions' records, and stopping them"),
        (name = "operations", description = "Benchmark, test frame, metrics, this document"),
    ),
)]
pub struct ApiDoc;

/// Adds the two ways of presenting the API secret (a derive cannot declare them).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "api-secret",
                "The API_SECRET of the server",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer <API_SECRET>`"))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a final newline: the form of `docs/openapi.json`.
pub fn pretty() -> String {
    // Serializing plain data types cannot fail; an empty document would fail the drift test loudly.
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json",
        body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` must be what the code generates (regenerate: `lipcast-supervisor --openapi`).
    #[test]
    fn committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == pretty(),
            "docs/openapi.json is stale: run `cargo run --release --bin lipcast-supervisor -- --openapi > \
             docs/openapi.json`"
        );
    }

    #[test]
    fn every_error_code_is_listed() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, &serde_json::json!(all));
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
