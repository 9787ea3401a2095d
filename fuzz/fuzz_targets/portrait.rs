//! A portrait image from a stranger: checked (format, pixel count, full decode under limits), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lipcast_supervisor::portrait::check(bytes::Bytes::copy_from_slice(data), 4_000_000);
});
