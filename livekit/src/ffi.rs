//! The engine's C ABI, loaded at run time with `libloading` (the crate builds without the library).

use std::ffi::{CString, c_char};
use std::path::Path;

use prost::Message;

use super::error::LiveKitError;
use super::proto::{FfiRequest, FfiResponse, ffi_request, ffi_response};

/// Callback the engine calls, on its own threads, with one serialized `FfiEvent`.
pub type EventCallback = unsafe extern "C" fn(data: *const u8, len: usize);

type InitializeFn = unsafe extern "C" fn(
    cb: EventCallback,
    capture_logs: bool,
    sdk: *const c_char,
    sdk_version: *const c_char,
);
type RequestFn = unsafe extern "C" fn(
    data: *const u8,
    len: usize,
    res_ptr: *mut *const u8,
    res_len: *mut usize,
) -> u64;
type DropHandleFn = unsafe extern "C" fn(handle: u64) -> bool;
type DisposeFn = unsafe extern "C" fn();

/// The loaded library and its four entry points.
pub struct FfiLibrary {
    request: RequestFn,
    drop_handle: DropHandleFn,
    dispose: DisposeFn,
    initialize: InitializeFn,
    // Keep the library mapped for as long as the function pointers above are used.
    _lib: libloading::Library,
}

impl FfiLibrary {
    /// Load the engine from `path` and resolve its symbols.
    pub fn load(path: &Path) -> Result<Self, LiveKitError> {
        let err = |reason: String| LiveKitError::LibraryLoad {
            path: path.to_path_buf(),
            reason,
        };
        // SAFETY: loading a shared library runs its initialisers; liblivekit_ffi.so is LiveKit's engine
        // from the pinned, checksummed wheel, whose initialisers have no preconditions.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| err(e.to_string()))?;
        // SAFETY: the symbol types match `livekit_ffi.h` of the same wheel.
        unsafe {
            let initialize = *lib
                .get::<InitializeFn>(b"livekit_ffi_initialize\0")
                .map_err(|e| err(e.to_string()))?;
            let request = *lib
                .get::<RequestFn>(b"livekit_ffi_request\0")
                .map_err(|e| err(e.to_string()))?;
            let drop_handle = *lib
                .get::<DropHandleFn>(b"livekit_ffi_drop_handle\0")
                .map_err(|e| err(e.to_string()))?;
            let dispose = *lib
                .get::<DisposeFn>(b"livekit_ffi_dispose\0")
                .map_err(|e| err(e.to_string()))?;
            Ok(Self {
                request,
                drop_handle,
                dispose,
                initialize,
                _lib: lib,
            })
        }
    }

    /// Start the engine; events will arrive through `cb`.
    pub fn initialize(&self, cb: EventCallback, capture_logs: bool) {
        let sdk = c"rust";
        let version = CString::new(env!("CARGO_PKG_VERSION")).unwrap_or_default();
        // SAFETY: both strings are valid NUL-terminated C strings for the duration of the call (the engine
        // copies them); `cb` is a valid `extern "C"` function for the life of the process.
        unsafe { (self.initialize)(cb, capture_logs, sdk.as_ptr(), version.as_ptr()) }
    }

    /// Send one request; returns the response. The response buffer's handle is dropped here.
    pub fn request(
        &self,
        msg: ffi_request::Message,
    ) -> Result<ffi_response::Message, LiveKitError> {
        let name = request_name(&msg);
        let bytes = FfiRequest { message: Some(msg) }.encode_to_vec();
        let mut res_ptr: *const u8 = std::ptr::null();
        let mut res_len: usize = 0;
        // SAFETY: `bytes` is valid for reads of its length during the call; the out-pointers are valid.
        let handle =
            unsafe { (self.request)(bytes.as_ptr(), bytes.len(), &mut res_ptr, &mut res_len) };
        if handle == 0 {
            return Err(LiveKitError::Request {
                request: name,
                reason: "invalid handle".into(),
            });
        }
        let decoded = if res_ptr.is_null() {
            Err(LiveKitError::Request {
                request: name,
                reason: "null response".into(),
            })
        } else {
            // SAFETY: the engine guarantees `res_ptr[..res_len]` stays valid until `handle` is dropped.
            let slice = unsafe { std::slice::from_raw_parts(res_ptr, res_len) };
            FfiResponse::decode(slice).map_err(|e| LiveKitError::Request {
                request: name,
                reason: e.to_string(),
            })
        };
        self.drop_handle(handle);
        decoded?.message.ok_or(LiveKitError::Request {
            request: name,
            reason: "empty response".into(),
        })
    }

    /// Release one handle. Returns false when the engine did not know it.
    pub fn drop_handle(&self, handle: u64) -> bool {
        // SAFETY: dropping an unknown handle is reported by the return value, not undefined behaviour.
        unsafe { (self.drop_handle)(handle) }
    }

    /// Tear the engine down (closes every room). Only at process end.
    pub fn dispose(&self) {
        // SAFETY: no preconditions; later requests fail with handle 0.
        unsafe { (self.dispose)() }
    }
}

/// A short name of a request, for errors and logs.
pub fn request_name(msg: &ffi_request::Message) -> &'static str {
    use ffi_request::Message as M;
    match msg {
        M::Connect(_) => "connect",
        M::Disconnect(_) => "disconnect",
        M::ReadyForRoomEvent(_) => "ready_for_room_event",
        M::PublishTrack(_) => "publish_track",
        M::UnpublishTrack(_) => "unpublish_track",
        M::NewVideoSource(_) => "new_video_source",
        M::CreateVideoTrack(_) => "create_video_track",
        M::CaptureVideoFrame(_) => "capture_video_frame",
        M::NewAudioSource(_) => "new_audio_source",
        M::CreateAudioTrack(_) => "create_audio_track",
        M::CaptureAudioFrame(_) => "capture_audio_frame",
        M::ClearAudioBuffer(_) => "clear_audio_buffer",
        M::RegisterRpcMethod(_) => "register_rpc_method",
        M::PerformRpc(_) => "perform_rpc",
        M::RpcMethodInvocationResponse(_) => "rpc_method_invocation_response",
        M::ByteReadIncremental(_) => "byte_read_incremental",
        _ => "request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_is_a_typed_error() {
        let err = FfiLibrary::load(Path::new("/nonexistent/liblivekit_ffi.so")).err();
        assert!(
            matches!(err, Some(LiveKitError::LibraryLoad { .. })),
            "{err:?}"
        );
    }
}
