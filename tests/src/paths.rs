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

/// A program of a test venv: `$override` if set, else `rel` under the workspace; missing, the test fails
/// saying how `scripts/test.sh` makes it.
fn venv_program(override_var: &str, rel: &str, made_from: &str) -> PathBuf {
    let path = std::env::var_os(override_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(rel));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it creates {} from {made_from})",
        path.display(),
        rel.split('/').next().unwrap_or(rel)
    );
    path
}

/// The test venv's python (`LIPCAST_TEST_PYTHON` overrides).
pub fn python() -> PathBuf {
    venv_program(
        "LIPCAST_TEST_PYTHON",
        ".venv-test/bin/python",
        "tests/room/requirements.txt",
    )
}

/// The MuseTalk exporter's venv python (`LIPCAST_MUSETALK_PYTHON` overrides), or None when its tests are
/// explicitly opted out with `LIPCAST_SKIP_MUSETALK=1` (said on stdout). Missing otherwise, the test fails.
pub fn musetalk_python() -> Option<PathBuf> {
    if std::env::var_os("LIPCAST_SKIP_MUSETALK").is_some_and(|v| v == "1") {
        println!("SKIPPED: LIPCAST_SKIP_MUSETALK=1 (the MuseTalk exporter's venv is not used)");
        return None;
    }
    Some(venv_program(
        "LIPCAST_MUSETALK_PYTHON",
        ".venv-musetalk/bin/python",
        "scripts/packs/requirements-musetalk.txt; LIPCAST_SKIP_MUSETALK=1 skips this test",
    ))
}

/// The venv with livekit-agents (`LIPCAST_AGENTS_PYTHON` overrides): the agent side as voice agents run it.
pub fn agents_python() -> PathBuf {
    venv_program(
        "LIPCAST_AGENTS_PYTHON",
        ".venv-agents/bin/python",
        "tests/room/agents-requirements.txt",
    )
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
    venv_program(
        "LIPCAST_SCHEMATHESIS",
        ".venv-api/bin/schemathesis",
        "tests/api/requirements.txt",
    )
}
