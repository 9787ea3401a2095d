//! A multipart `/launch` body (boundary `XyZ`): a typed 4xx error or a request, never a panic.
#![no_main]

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use lipcast_supervisor::http::launch_request;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let request = Request::builder()
            .method("POST")
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(Body::from(data.to_vec()))
            .expect("request");
        let Ok(form) = Multipart::from_request(request, &()).await else {
            return;
        };
        match launch_request::parse_multipart(form).await {
            Ok(raw) => {
                let _ = launch_request::validate(raw, None);
            }
            Err(e) => assert!(e.status.is_client_error()),
        }
    });
});
