//! `POST /launch` bodies: `application/json` (what livekit-plugins-bithuman sends by default) and
//! `multipart/form-data` (the seed's curl examples, and the plugin with `model="expression..."`).
//! Both become one validated [`LaunchRequest`].

use axum::body::Bytes;
use axum::extract::Multipart;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::Value;

use super::error::{ApiError, ErrorCode};
use crate::portrait::ImageSource;

const MAX_URL_LEN: usize = 2048;
const MAX_TOKEN_LEN: usize = 8192;
const MAX_ROOM_LEN: usize = 256;
const MAX_PROMPT_LEN: usize = 2000;
const MAX_SHORT_LEN: usize = 128;

/// A launch after parsing, before validation of its values.
#[derive(Debug, Default)]
pub struct RawLaunch {
    pub livekit_url: Option<String>,
    pub livekit_token: Option<String>,
    pub room_name: Option<String>,
    pub image: Option<ImageSource>,
    pub avatar_id: Option<String>,
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub async_mode: Option<bool>,
    pub api_secret: Option<String>,
}

/// A launch whose fields are all present and well-formed.
#[derive(Debug)]
pub struct LaunchRequest {
    pub livekit_url: String,
    pub livekit_token: String,
    pub room_name: String,
    pub image: Option<ImageSource>,
    pub avatar_id: Option<String>,
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub async_mode: bool,
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidRequest, detail)
}

pub fn parse_bool(field: &str, s: &str) -> Result<bool, ApiError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(format!("`{field}` must be true or false"))),
    }
}

/// A JSON `image` or form `avatar_image_url`: an http(s) URL, a data URI or plain base64.
fn image_from_text(field: &str, text: &str) -> Result<ImageSource, ApiError> {
    let text = text.trim();
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        if text.len() > MAX_URL_LEN {
            return Err(bad(format!(
                "`{field}` URL is longer than {MAX_URL_LEN} characters"
            )));
        }
        return Ok(ImageSource::Url(text.to_owned()));
    }
    if lower.contains("://") {
        return Err(bad(format!("`{field}` URL must be http or https")));
    }
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest
            .split_once(";base64,")
            .map(|(_, b64)| b64)
            .ok_or_else(|| bad(format!("`{field}` data URI must be base64-encoded")))?,
        None => text,
    };
    let compact: String = payload
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(bad(format!("`{field}` is empty")));
    }
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map(|b| ImageSource::Bytes(Bytes::from(b)))
        .map_err(|_| {
            bad(format!(
                "`{field}` is neither an http(s) URL nor valid base64"
            ))
        })
}

fn json_string(
    obj: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("`{key}` must be a string"))),
    }
}

pub fn parse_json(body: &Bytes) -> Result<RawLaunch, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidJson,
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            "request body must be a JSON object",
        ));
    };
    let async_mode = match obj.get("async_mode") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => Some(parse_bool("async_mode", s)?),
        Some(_) => return Err(bad("`async_mode` must be a boolean")),
    };
    let image = json_string(&obj, "image")?
        .or(json_string(&obj, "avatar_image_url")?)
        .map(|s| image_from_text("image", &s))
        .transpose()?;
    Ok(RawLaunch {
        livekit_url: json_string(&obj, "livekit_url")?,
        livekit_token: json_string(&obj, "livekit_token")?,
        room_name: json_string(&obj, "room_name")?,
        image,
        avatar_id: json_string(&obj, "avatar_id")?.or(json_string(&obj, "agent_id")?),
        prompt: json_string(&obj, "prompt")?,
        model: json_string(&obj, "model")?,
        mode: json_string(&obj, "mode")?,
        async_mode,
        api_secret: json_string(&obj, "api_secret")?,
    })
}

pub async fn parse_multipart(mut form: Multipart) -> Result<RawLaunch, ApiError> {
    let mut raw = RawLaunch::default();
    let mut seen = std::collections::HashSet::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if !seen.insert(name.clone()) {
            return Err(bad(format!("field `{name}` is given more than once")));
        }
        if name == "avatar_image" {
            let bytes = field.bytes().await.map_err(multipart_error)?;
            if bytes.is_empty() {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidImage,
                    "`avatar_image` is empty",
                ));
            }
            raw.image = Some(ImageSource::Bytes(bytes));
            continue;
        }
        let known = matches!(
            name.as_str(),
            "livekit_url"
                | "livekit_token"
                | "room_name"
                | "avatar_image_url"
                | "image"
                | "prompt"
                | "api_secret"
                | "async_mode"
                | "model"
                | "mode"
                | "avatar_id"
                | "agent_id"
        );
        if !known {
            // Drop-in: fields of other versions of the API are ignored, not errors.
            let _ = field.bytes().await.map_err(multipart_error)?;
            continue;
        }
        // Strict UTF-8: multer's `text()` would replace invalid bytes and let them through.
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| bad(format!("field `{name}` is not valid UTF-8 text")))?;
        match name.as_str() {
            "livekit_url" => raw.livekit_url = Some(text),
            "livekit_token" => raw.livekit_token = Some(text),
            "room_name" => raw.room_name = Some(text),
            "avatar_image_url" | "image" if raw.image.is_none() => {
                raw.image = Some(image_from_text(&name, &text)?)
            }
            "avatar_image_url" | "image" => {
                return Err(bad(
                    "give one portrait: `avatar_image` or `avatar_image_url`",
                ));
            }
            "prompt" => raw.prompt = Some(text),
            "api_secret" => raw.api_secret = Some(text),
            "async_mode" => raw.async_mode = Some(parse_bool("async_mode", &text)?),
            "model" => raw.model = Some(text),
            "mode" => raw.mode = Some(text),
            "avatar_id" | "agent_id" => raw.avatar_id = Some(text),
            _ => {}
        }
    }
    Ok(raw)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(e.body_text())
    } else {
        ApiError::bad_request(
            ErrorCode::InvalidMultipart,
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

/// What a field may contain besides printable text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Text {
    /// Names, URLs, tokens: one line, no control or bidirectional-override characters (they would
    /// forge log lines or make a room name read differently than it is).
    Line,
    /// The prompt: free text, so new lines and tabs are fine.
    Free,
}

fn required(value: Option<String>, field: &str, max: usize) -> Result<String, ApiError> {
    let value = value.map(|v| v.trim().to_owned()).unwrap_or_default();
    if value.is_empty() {
        return Err(bad(format!("`{field}` is required")));
    }
    check_text(&value, field, max, Text::Line)?;
    Ok(value)
}

fn optional(
    value: Option<String>,
    field: &str,
    max: usize,
    kind: Text,
) -> Result<Option<String>, ApiError> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(v) = &value {
        check_text(v, field, max, kind)?;
    }
    Ok(value)
}

/// The bidirectional embedding, override and isolate controls (U+202A..U+202E, U+2066..U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn check_text(value: &str, field: &str, max: usize, kind: Text) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(bad(format!("`{field}` is longer than {max} characters")));
    }
    let allowed = |c: char| kind == Text::Free && (c == '\n' || c == '\t' || c == '\r');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(bad(format!("`{field}` contains control characters")));
    }
    if kind == Text::Line && value.chars().any(is_bidi_control) {
        return Err(bad(format!(
            "`{field}` contains bidirectional override characters"
        )));
    }
    Ok(())
}

/// Check every field of a parsed launch; `query_async` is `?async=` from the URL.
pub fn validate(raw: RawLaunch, query_async: Option<bool>) -> Result<LaunchRequest, ApiError> {
    let livekit_url = required(raw.livekit_url, "livekit_url", MAX_URL_LEN)?;
    let parsed = url::Url::parse(&livekit_url)
        .map_err(|_| bad("`livekit_url` is not a valid URL (e.g. ws://livekit:7880)"))?;
    if !matches!(parsed.scheme(), "ws" | "wss" | "http" | "https") || parsed.host().is_none() {
        return Err(bad(
            "`livekit_url` must be a ws://, wss://, http:// or https:// URL with a host",
        ));
    }
    let avatar_id = optional(raw.avatar_id, "avatar_id", 64, Text::Line)?;
    if let Some(id) = &avatar_id
        && !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(
            "`avatar_id` may only contain letters, digits, `-` and `_`",
        ));
    }
    Ok(LaunchRequest {
        livekit_url,
        livekit_token: required(raw.livekit_token, "livekit_token", MAX_TOKEN_LEN)?,
        room_name: required(raw.room_name, "room_name", MAX_ROOM_LEN)?,
        image: raw.image,
        avatar_id,
        prompt: optional(raw.prompt, "prompt", MAX_PROMPT_LEN, Text::Free)?,
        model: optional(raw.model, "model", MAX_SHORT_LEN, Text::Line)?,
        mode: optional(raw.mode, "mode", MAX_SHORT_LEN, Text::Line)?,
        async_mode: raw.async_mode.or(query_async).unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Result<RawLaunch, ApiError> {
        parse_json(&Bytes::from(s.to_owned()))
    }

    #[test]
    fn json_fields_and_types() {
        let raw = json(r#"{"livekit_url":"ws://h:7880","livekit_token":"a.b.c","room_name":"r","mode":"gpu","image":"aGVsbG8=","agent_id":"a1"}"#)
            .expect("parse");
        assert!(matches!(raw.image, Some(ImageSource::Bytes(ref b)) if b.as_ref() == b"hello"));
        assert_eq!(raw.avatar_id.as_deref(), Some("a1"));
        assert_eq!(json(r#"{"room_name": 5}"#).unwrap_err().status, 400);
        assert_eq!(json("[1]").unwrap_err().code, ErrorCode::InvalidJson);
        assert_eq!(json("{").unwrap_err().code, ErrorCode::InvalidJson);
        assert!(matches!(
            json(r#"{"image":"https://x/y.jpg"}"#).expect("url").image,
            Some(ImageSource::Url(_))
        ));
        assert!(json(r#"{"image":"ftp://x/y.jpg"}"#).is_err());
        assert!(json(r#"{"image":"%%%"}"#).is_err());
        assert!(matches!(
            json(r#"{"image":"data:image/png;base64,aGVsbG8="}"#)
                .expect("data uri")
                .image,
            Some(ImageSource::Bytes(_))
        ));
    }

    #[test]
    fn validation() {
        let ok = || RawLaunch {
            livekit_url: Some("wss://lk.example:443".into()),
            livekit_token: Some("t".into()),
            room_name: Some("room".into()),
            ..Default::default()
        };
        assert!(validate(ok(), None).expect("valid").async_mode);
        assert!(!validate(ok(), Some(false)).expect("valid").async_mode);
        let mut r = ok();
        r.async_mode = Some(true);
        assert!(
            validate(r, Some(false)).expect("valid").async_mode,
            "field wins over query"
        );
        let mut r = ok();
        r.livekit_url = Some("file:///etc/passwd".into());
        assert!(validate(r, None).is_err());
        let mut r = ok();
        r.room_name = Some("  ".into());
        assert!(validate(r, None).is_err());
        let mut r = ok();
        r.avatar_id = Some("../etc".into());
        assert!(validate(r, None).is_err());
        let mut r = ok();
        r.prompt = Some("x".repeat(MAX_PROMPT_LEN + 1));
        assert!(validate(r, None).is_err());
        for odd in [
            "r\u{0}",
            "a\nb",
            "\u{1b}[31mred",
            "r\u{85}x",
            "abc\u{202e}fdp.exe",
            "x\u{2066}y",
        ] {
            let mut r = ok();
            r.room_name = Some(odd.into());
            assert!(validate(r, None).is_err(), "room_name {odd:?}");
        }
        let mut r = ok();
        r.prompt = Some("Line one.\nLine two,\tindented. \u{5e9}\u{5dc}\u{5d5}\u{5dd}".into());
        assert!(validate(r, None).is_ok(), "a prompt may span lines");
        let mut r = ok();
        r.prompt = Some("bell\u{7}".into());
        assert!(validate(r, None).is_err());
    }
}
