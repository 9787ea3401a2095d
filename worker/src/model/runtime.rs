//! ONNX Runtime for one worker process: the library, the process-wide environment and session creation on the
//! requested device.
//!
//! `ort` is built with `load-dynamic`: the shared library comes from `scripts/setup.sh` (the pinned
//! `onnxruntime` wheel; `ORT_DYLIB_PATH` overrides). `ort::init_from` must be the first `ort` call and there is one
//! environment per process, so [`environment`] keeps it in a `OnceLock`.
//!
//! Device selection (`DEVICE`): `auto` tries the CUDA execution provider strictly (`error_on_failure`) and, if it
//! cannot be used, logs one warning saying why and uses the CPU for the rest of the [`Runtime`]'s life; `cuda`
//! turns that failure into an error; `cpu` never tries CUDA.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::Instant,
};

use ort::{
    environment::Environment,
    ep,
    session::{Session, builder::GraphOptimizationLevel, builder::SessionBuilder},
};

/// Errors of the inference runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (looked for {looked_for}); run scripts/setup.sh or set ORT_DYLIB_PATH"
    )]
    LibraryMissing { looked_for: String },
    #[error("could not load ONNX Runtime from {path}: {reason}")]
    LibraryLoad { path: PathBuf, reason: String },
    #[error("ONNX Runtime environment: {0}")]
    Environment(String),
    #[error("DEVICE=cuda was requested but the CUDA execution provider cannot be used: {0}")]
    CudaUnavailable(String),
    #[error("loading model {path}: {reason}")]
    Session { path: PathBuf, reason: String },
}

/// The `DEVICE` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA if it works, else the CPU (one warning).
    #[default]
    Auto,
    /// CUDA or an error.
    Cuda,
    /// CPU only.
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Auto => "auto",
            Device::Cuda => "cuda",
            Device::Cpu => "cpu",
        })
    }
}

/// Where sessions actually run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveDevice {
    Cuda,
    Cpu,
}

/// Settings for the sessions of one worker (= one avatar session).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub device: Device,
    /// Intra-op threads per ONNX session: the CPU budget of one avatar session (default 1). Workers never
    /// spin-wait, so idle threads cost nothing.
    pub intra_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            device: Device::Auto,
            intra_threads: 1,
        }
    }
}

/// Checks that `path` is a loadable ONNX Runtime library without touching the process-wide environment.
/// Never panics; the error names what is wrong.
pub fn check_library(path: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let Some(path) = path else {
        return Err(RuntimeError::LibraryMissing {
            looked_for:
                "ORT_DYLIB_PATH, .vendor/onnxruntime/libonnxruntime.so, /opt/lipcast/vendor".into(),
        });
    };
    if !path.is_file() {
        return Err(RuntimeError::LibraryMissing {
            looked_for: path.display().to_string(),
        });
    }
    let has_api = lipcast_sys::library::exports(path, "OrtGetApiBase").map_err(|reason| {
        RuntimeError::LibraryLoad {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    if !has_api {
        return Err(RuntimeError::LibraryLoad {
            path: path.to_path_buf(),
            reason: "it does not export OrtGetApiBase (not ONNX Runtime)".into(),
        });
    }
    Ok(path.to_path_buf())
}

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static ENVIRONMENT_INIT: Mutex<()> = Mutex::new(());

/// The process-wide ONNX Runtime environment, loading the library found by [`crate::vendor::onnxruntime`] on
/// first use.
pub fn environment() -> Result<&'static Environment, RuntimeError> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = ENVIRONMENT_INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let path = check_library(crate::vendor::onnxruntime().as_deref())?;
    let builder = ort::init_from(&path).map_err(|e| RuntimeError::LibraryLoad {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let env = builder
        .with_name("lipcast")
        .build()
        .map_err(|e| RuntimeError::Environment(e.to_string()))?;
    tracing::info!(library = %path.display(), "ONNX Runtime loaded");
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// A loaded model and where it runs.
pub struct LoadedSession {
    pub session: Session,
    pub device: ActiveDevice,
    pub load_ms: f64,
}

/// Creates sessions on the configured device. Owns the decision `auto` made (made once, on the first session).
pub struct Runtime {
    env: &'static Environment,
    config: RuntimeConfig,
    resolved: Mutex<Option<ActiveDevice>>,
}

impl Runtime {
    /// Loads the library (once per process) and remembers `config`.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let env = environment()?;
        let resolved = match config.device {
            Device::Cpu => Some(ActiveDevice::Cpu),
            _ => None,
        };
        Ok(Self {
            env,
            config,
            resolved: Mutex::new(resolved),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The device sessions run on, once the first session decided it (`None` before that under `auto`/`cuda`).
    pub fn active_device(&self) -> Option<ActiveDevice> {
        *self.resolved.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn builder(&self, path: &Path) -> Result<SessionBuilder, RuntimeError> {
        let err = |e: ort::Error| RuntimeError::Session {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let threads = self.config.intra_threads.max(1);
        Session::builder(self.env)
            .map_err(err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| err(e.into()))?
            .with_intra_threads(threads)
            .map_err(|e| err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.into()))?
            .with_config_entry("session.intra_op.allow_spinning", "0")
            .map_err(|e| err(e.into()))?
            .with_config_entry("session.inter_op.allow_spinning", "0")
            .map_err(|e| err(e.into()))
    }

    fn cpu_session(&self, path: &Path) -> Result<Session, RuntimeError> {
        let err = |e: ort::Error| RuntimeError::Session {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        self.builder(path)?
            .with_execution_providers([ep::CPU::default().with_arena_allocator(true).build()])
            .map_err(|e| err(e.into()))?
            .commit_from_file(path)
            .map_err(err)
    }

    fn cuda_session(&self, path: &Path) -> Result<Session, String> {
        let builder = self.builder(path).map_err(|e| e.to_string())?;
        builder
            .with_execution_providers([ep::CUDA::default()
                .with_device_id(0)
                .build()
                .error_on_failure()])
            .map_err(|e| e.to_string())?
            .commit_from_file(path)
            .map_err(|e| e.to_string())
    }

    /// Loads the ONNX model at `path` on the configured device.
    pub fn load(&self, path: &Path) -> Result<LoadedSession, RuntimeError> {
        let t0 = Instant::now();
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        let (session, device) = match *resolved {
            Some(ActiveDevice::Cpu) => (self.cpu_session(path)?, ActiveDevice::Cpu),
            Some(ActiveDevice::Cuda) => (
                self.cuda_session(path)
                    .map_err(RuntimeError::CudaUnavailable)?,
                ActiveDevice::Cuda,
            ),
            None => match self.cuda_session(path) {
                Ok(s) => {
                    tracing::info!("ONNX Runtime: using the CUDA execution provider");
                    *resolved = Some(ActiveDevice::Cuda);
                    (s, ActiveDevice::Cuda)
                }
                Err(reason) if self.config.device == Device::Cuda => {
                    return Err(RuntimeError::CudaUnavailable(reason));
                }
                Err(reason) => {
                    tracing::warn!(
                        "DEVICE=auto: CUDA execution provider unavailable, falling back to CPU ({} intra-op thread(s)): {reason}",
                        self.config.intra_threads.max(1)
                    );
                    *resolved = Some(ActiveDevice::Cpu);
                    (self.cpu_session(path)?, ActiveDevice::Cpu)
                }
            },
        };
        Ok(LoadedSession {
            session,
            device,
            load_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_is_an_error() {
        let e = check_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(matches!(e, RuntimeError::LibraryMissing { .. }), "{e}");
        assert!(e.to_string().contains("scripts/setup.sh"));
        assert!(matches!(
            check_library(None),
            Err(RuntimeError::LibraryMissing { .. })
        ));
    }
}
