//! Generates the Rust types of LiveKit's FFI protocol (`livekit.proto`) from the FileDescriptorSet that
//! `scripts/setup.sh` extracted from the pinned `livekit` wheel. No `protoc`, no committed generated code.

use std::path::PathBuf;

use prost::Message;

fn main() {
    println!("cargo:rerun-if-env-changed=LIVEKIT_FFI_FDS");
    println!("cargo:rerun-if-changed=build.rs");
    let fds_path = match std::env::var_os("LIVEKIT_FFI_FDS").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let manifest =
                PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            manifest
                .join("..")
                .join(".vendor")
                .join("livekit")
                .join("ffi.fds")
        }
    };
    println!("cargo:rerun-if-changed={}", fds_path.display());
    let bytes = match std::fs::read(&fds_path) {
        Ok(b) => b,
        Err(e) => fail(&format!(
            "cannot read LiveKit FFI descriptors at {} ({e}); run scripts/setup.sh first \
             (or set LIVEKIT_FFI_FDS to the ffi.fds it produces)",
            fds_path.display()
        )),
    };
    let fds = match prost_types::FileDescriptorSet::decode(bytes.as_slice()) {
        Ok(f) => f,
        Err(e) => fail(&format!(
            "{} is not a valid FileDescriptorSet ({e}); run scripts/setup.sh first",
            fds_path.display()
        )),
    };
    if let Err(e) = prost_build::Config::new().compile_fds(fds) {
        fail(&format!(
            "generating LiveKit FFI types from {} failed: {e}",
            fds_path.display()
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}
