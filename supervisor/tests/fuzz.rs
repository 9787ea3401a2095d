//! Bounded fuzzing on stable Rust (proptest): whatever bytes a stranger sends, request parsing and image
//! checking never panic and always answer with a typed error (a 4xx `ApiError` with a known code, or a
//! `PortraitError`/`TokenError`). Case counts are bounded so this runs in seconds in CI; the `cargo fuzz`
//! targets in `fuzz/` run the same functions for as long as you like, by hand.

use std::io::Cursor;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::http::Request;
use lipcast_supervisor::http::error::{ApiError, ErrorCode};
use lipcast_supervisor::http::launch_request::{self, RawLaunch};
use lipcast_supervisor::portrait::fetch::{AllowRange, is_public};
use lipcast_supervisor::portrait::{self, PortraitError};
use lipcast_supervisor::token;
use proptest::prelude::*;

/// Every error code request parsing may answer with.
const PARSE_CODES: &[&str] = &[
    "invalid_json",
    "invalid_request",
    "invalid_multipart",
    "invalid_image",
    "too_large",
];

fn assert_typed(result: Result<RawLaunch, ApiError>) -> Option<RawLaunch> {
    match result {
        Ok(raw) => Some(raw),
        Err(e) => {
            assert!(e.status.is_client_error(), "{e:?}");
            assert!(PARSE_CODES.contains(&e.code.as_str()), "{e:?}");
            assert!(!e.detail.is_empty(), "{e:?}");
            None
        }
    }
}

/// Parsed launches then go through validation: also a typed error or a request.
fn validate_typed(raw: RawLaunch) {
    if let Err(e) = launch_request::validate(raw, None) {
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (400, "invalid_request"),
            "{e:?}"
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

fn multipart(
    rt: &tokio::runtime::Runtime,
    boundary: &str,
    body: Vec<u8>,
) -> Result<RawLaunch, ApiError> {
    rt.block_on(async {
        let request = Request::builder()
            .method("POST")
            .uri("/launch")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .expect("request");
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|r| ApiError::bad_request(ErrorCode::InvalidMultipart, r.body_text()))?;
        launch_request::parse_multipart(form).await
    })
}

/// A JSON value of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(
            "data:image/png;base64,iVBORw0KGgo="
        )),
        Just(serde_json::Value::from("http://127.0.0.1/x.png")),
        Just(serde_json::Value::from("ws://livekit:7880")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "livekit_url",
    "livekit_token",
    "room_name",
    "image",
    "avatar_image_url",
    "avatar_id",
    "agent_id",
    "prompt",
    "model",
    "mode",
    "async_mode",
    "api_secret",
];

fn png(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn json_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Some(raw) = assert_typed(launch_request::parse_json(&Bytes::from(body))) {
            validate_typed(raw);
        }
    }

    #[test]
    fn json_objects_of_any_shape_get_a_typed_answer(
        fields in prop::collection::vec((0..FIELDS.len(), json_value()), 0..8),
    ) {
        let obj: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(i, v)| (FIELDS[i].to_owned(), v))
            .collect();
        let body = serde_json::to_vec(&obj).expect("serialise");
        if let Some(raw) = assert_typed(launch_request::parse_json(&Bytes::from(body))) {
            validate_typed(raw);
        }
    }

    #[test]
    fn tokens_never_panic(text in any::<String>(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = token::read_claims(&text);
        use base64::Engine;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&payload);
        let _ = token::read_claims(&format!("eyJhbGciOiJIUzI1NiJ9.{encoded}.c2ln"));
    }

    #[test]
    fn address_classifier_is_total(v4 in any::<u32>(), v6 in any::<u128>(), cidr in any::<String>()) {
        let _ = is_public(std::net::IpAddr::V4(v4.into()));
        let _ = is_public(std::net::IpAddr::V6(v6.into()));
        let _ = cidr.parse::<AllowRange>();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn multipart_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let rt = runtime();
        assert_typed(multipart(&rt, "XyZ", body));
    }

    #[test]
    fn multipart_forms_of_any_content_get_a_typed_answer(
        parts in prop::collection::vec(
            (0..FIELDS.len() + 2, prop::collection::vec(any::<u8>(), 0..64), any::<bool>()),
            0..8,
        ),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut body = Vec::new();
        for (i, value, as_file) in parts {
            let name = FIELDS.get(i).copied().unwrap_or(if i == FIELDS.len() { "avatar_image" } else { "unknown" });
            body.extend_from_slice(b"--XyZ\r\n");
            let filename = if as_file { "; filename=\"a.png\"" } else { "" };
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        if truncate {
            body.truncate(cut.index(body.len() + 1));
        }
        let rt = runtime();
        if let Some(raw) = assert_typed(multipart(&rt, "XyZ", body)) {
            validate_typed(raw);
        }
    }

    #[test]
    fn image_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = portrait::check(Bytes::from(body), 1_000_000);
    }
}

/// Valid images of each accepted format, damaged at random: a typed error or a (still) valid image, never a
/// panic; and a header that claims too many pixels is refused before any decoding.
#[test]
fn damaged_images_get_a_typed_answer() {
    let originals = [
        png(48, 40, image::ImageFormat::Png),
        png(48, 40, image::ImageFormat::Jpeg),
        png(48, 40, image::ImageFormat::WebP),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 384,
        ..ProptestConfig::default()
    });
    let strategy = (
        0..originals.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(which, flips, cut, truncate)| {
            let mut bytes = originals[which].clone();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
            match portrait::check(Bytes::from(bytes), 1_000_000) {
                Ok(p) => prop_assert!(p.width > 0 && p.height > 0),
                Err(
                    PortraitError::Format
                    | PortraitError::Decode(_)
                    | PortraitError::TooManyPixels { .. },
                ) => {}
            }
            Ok(())
        })
        .expect("damaged images");
    // A bomb: a PNG whose header (with a valid checksum) claims 100000 x 100000 pixels.
    let mut bomb = originals[0].clone();
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        portrait::check(Bytes::from(bomb), 25_000_000),
        Err(PortraitError::TooManyPixels {
            width: 100_000,
            height: 100_000,
            ..
        })
    ));
}

/// CRC-32 of PNG chunks (type and data).
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}
