//! Where things are: the workspace, the release binaries, the test venv.

use std::path::PathBuf;

pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A binary of the workspace built in release mode (the real-time tests need optimised code).
pub fn release_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let path = target.join("release").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The test venv's python (`LIPCAST_TEST_PYTHON` overrides).
pub fn python() -> PathBuf {
    let python = std::env::var_os("LIPCAST_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv-test/bin/python"));
    assert!(
        python.exists(),
        "test venv python {} is missing: run scripts/test.sh (it creates .venv-test from tests/room/requirements.txt)",
        python.display()
    );
    python
}

/// The venv with livekit-agents (`LIPCAST_AGENTS_PYTHON` overrides): the agent side as voice agents run it.
pub fn agents_python() -> PathBuf {
    let python = std::env::var_os("LIPCAST_AGENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv-agents/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv-agents from tests/room/agents-requirements.txt)",
        python.display()
    );
    python
}

pub fn room_dir() -> PathBuf {
    workspace().join("tests/room")
}

/// The shipped default portrait.
pub fn default_portrait() -> Vec<u8> {
    let p = workspace().join("models/portraits/default.jpg");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// schemathesis in the API test venv (`LIPCAST_SCHEMATHESIS` overrides).
pub fn schemathesis() -> PathBuf {
    let bin = std::env::var_os("LIPCAST_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv-api/bin/schemathesis"));
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv-api from tests/api/requirements.txt)",
        bin.display()
    );
    bin
}
