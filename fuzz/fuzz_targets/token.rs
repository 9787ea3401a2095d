//! A `livekit_token`: its claims read (not verified), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lipcast_supervisor::token::read_claims(text);
    }
});
