//! Shared libraries loaded at run time.

use std::path::Path;

/// Whether the shared library at `path` loads and exports `symbol` (not called). Loading runs the library's
/// initialisers; the handle is dropped at once (the library stays mapped if the process already holds it).
/// Only for libraries the operator installed as what they claim to be (ONNX Runtime): a hostile file's
/// initialisers would run.
pub fn exports(path: &Path, symbol: &str) -> Result<bool, String> {
    // SAFETY: per this function's contract, the library is a well-behaved one whose initialisers are safe.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // SAFETY: only the presence of the symbol is checked; it is never called or read.
    let found = unsafe { lib.get::<*const std::ffi::c_void>(symbol.as_bytes()) }.is_ok();
    Ok(found)
}
