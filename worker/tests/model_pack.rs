//! Model pack verification.

mod model_support;

use std::path::Path;

use lipcast_worker::model::{FileRole, ModelPack, PackError, pack::FrontendKind};

fn copy_pack(to: &Path) {
    let from = model_support::models_dir().join("builtin");
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lipcast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn builtin_pack_verifies() {
    let pack = model_support::builtin_pack();
    assert_eq!(pack.manifest.name, "lipcast-builtin");
    assert_eq!(pack.manifest.fps, 25);
    assert_eq!(pack.manifest.frontend(), FrontendKind::Network);
    assert!(pack.path(FileRole::FaceDetector).unwrap().is_file());
    assert!(pack.path(FileRole::Mouth).unwrap().is_file());
    assert!(pack.path(FileRole::FaceMesh).unwrap().is_file());
    assert!(matches!(
        pack.file(FileRole::Generate),
        Err(PackError::MissingRole { .. })
    ));
}

#[test]
fn tampered_pack_is_refused_naming_the_file() {
    let dir = temp_dir("tampered");
    copy_pack(&dir);
    assert!(ModelPack::load(&dir).is_ok(), "an exact copy verifies");
    let target = dir.join("face_landmark.onnx");
    let mut bytes = std::fs::read(&target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&target, bytes).unwrap();
    let err = ModelPack::load(&dir).unwrap_err();
    eprintln!("{err}");
    match &err {
        PackError::HashMismatch { file, .. } => {
            assert!(file.ends_with("face_landmark.onnx"), "{file}")
        }
        e => panic!("expected HashMismatch, got {e}"),
    }
    assert!(err.to_string().contains("face_landmark.onnx"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_and_escaping_paths_are_refused() {
    let dir = temp_dir("missing");
    copy_pack(&dir);
    std::fs::remove_file(dir.join("face_detection_short_range.onnx")).unwrap();
    let err = ModelPack::load(&dir).unwrap_err();
    assert!(
        err.to_string().contains("face_detection_short_range.onnx"),
        "{err}"
    );

    std::fs::copy(
        model_support::models_dir().join("builtin/face_detection_short_range.onnx"),
        dir.join("face_detection_short_range.onnx"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let evil = manifest.replace(
        "path = \"face_landmark.onnx\"",
        "path = \"../face_landmark.onnx\"",
    );
    std::fs::write(dir.join("manifest.toml"), evil).unwrap();
    assert!(matches!(
        ModelPack::load(&dir),
        Err(PackError::Manifest { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
