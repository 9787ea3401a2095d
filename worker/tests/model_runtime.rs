//! ONNX Runtime set-up and device selection, with the real library (no GPU on CI machines).

mod model_support;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use lipcast_worker::model::{
    ActiveDevice, Device, FileRole, Runtime, RuntimeConfig, RuntimeError,
    runtime::{check_library, environment},
};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn detector_path() -> std::path::PathBuf {
    model_support::builtin_pack()
        .path(FileRole::FaceDetector)
        .unwrap()
}

#[test]
fn library_loads_and_bad_libraries_are_errors() {
    let lib = lipcast_worker::vendor::onnxruntime()
        .expect("run scripts/setup.sh: ONNX Runtime library missing");
    check_library(Some(&lib)).expect("the vendored library is ONNX Runtime");
    environment().expect("environment");
    let e =
        check_library(Some(std::path::Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
    assert!(matches!(e, RuntimeError::LibraryMissing { .. }), "{e}");
    // A file that is not a shared library.
    let not_lib = model_support::models_dir().join("builtin/manifest.toml");
    let e = check_library(Some(&not_lib)).unwrap_err();
    assert!(matches!(e, RuntimeError::LibraryLoad { .. }), "{e}");
}

#[test]
fn cuda_request_fails_loudly_without_a_gpu() {
    let rt = model_support::runtime(RuntimeConfig {
        device: Device::Cuda,
        intra_threads: 1,
    });
    match rt.load(&detector_path()) {
        Err(RuntimeError::CudaUnavailable(reason)) => {
            eprintln!(
                "DEVICE=cuda error: {}",
                RuntimeError::CudaUnavailable(reason.clone())
            );
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("expected CudaUnavailable, got {e}"),
        Ok(s) => assert_eq!(
            s.device,
            ActiveDevice::Cuda,
            "a session on CUDA means this machine has a GPU"
        ),
    }
}

#[test]
fn auto_falls_back_to_cpu_with_one_warning() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let (first, second) = tracing::subscriber::with_default(subscriber, || {
        let rt = model_support::runtime(RuntimeConfig {
            device: Device::Auto,
            intra_threads: 1,
        });
        let first = rt.load(&detector_path()).expect("auto always loads");
        let second = rt
            .load(
                &model_support::builtin_pack()
                    .path(FileRole::FaceMesh)
                    .unwrap(),
            )
            .expect("auto loads");
        (first, second)
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    eprintln!("captured log:\n{log}");
    if first.device == ActiveDevice::Cpu {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("falling back to CPU"))
            .collect();
        assert_eq!(lines.len(), 1, "exactly one fallback line: {log}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("CUDA"),
            "{}",
            lines[0]
        );
        assert_eq!(second.device, ActiveDevice::Cpu);
    }
    eprintln!(
        "model load: {:.1} ms + {:.1} ms",
        first.load_ms, second.load_ms
    );
}

#[test]
fn cpu_device_never_tries_cuda() {
    let rt: Runtime = model_support::cpu_runtime();
    assert_eq!(rt.active_device(), Some(ActiveDevice::Cpu));
    let s = rt.load(&detector_path()).unwrap();
    assert_eq!(s.device, ActiveDevice::Cpu);
}
