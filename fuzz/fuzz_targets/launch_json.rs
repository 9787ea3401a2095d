//! A JSON `/launch` body: parsed and validated, a typed 4xx error or a request, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lipcast_supervisor::http::launch_request;

fuzz_target!(|data: &[u8]| {
    match launch_request::parse_json(&bytes::Bytes::copy_from_slice(data)) {
        Ok(raw) => {
            if let Err(e) = launch_request::validate(raw, None) {
                assert!(e.status.is_client_error());
            }
        }
        Err(e) => assert!(e.status.is_client_error()),
    }
});
