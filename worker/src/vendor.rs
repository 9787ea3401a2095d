//! Where the run-time libraries fetched by `scripts/setup.sh` live.
//!
//! An explicit environment variable wins; otherwise `.vendor/` beside the current directory, then the
//! repository that holds this executable (walking up from `target/<profile>/`), then `/opt/lipcast/vendor`.

use std::path::{Path, PathBuf};

/// Path to a vendored file such as `onnxruntime/libonnxruntime.so`, honouring `env_var` first.
pub fn locate(env_var: &str, relative: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    candidates()
        .into_iter()
        .map(|dir| dir.join(relative))
        .find(|p| p.exists())
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join(".vendor"));
    }
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).map(|a: &Path| a.join(".vendor")));
    }
    dirs.push(PathBuf::from("/opt/lipcast/vendor"));
    dirs
}

/// ONNX Runtime shared library (`ORT_DYLIB_PATH` overrides).
pub fn onnxruntime() -> Option<PathBuf> {
    locate("ORT_DYLIB_PATH", "onnxruntime/libonnxruntime.so")
}

/// LiveKit's engine (`LIVEKIT_FFI_PATH` overrides).
pub fn livekit_ffi() -> Option<PathBuf> {
    locate("LIVEKIT_FFI_PATH", "livekit/liblivekit_ffi.so")
}
