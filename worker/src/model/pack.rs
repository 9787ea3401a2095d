//! Model packs: a folder with `manifest.toml` and the ONNX files it lists, each checked against its sha256 on
//! load. The format is described in `docs/models.md`.

use std::{
    io::Read,
    path::{Component, Path, PathBuf},
};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a pack cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(
        "model pack folder not found (looked in LIPCAST_MODELS_DIR, ./models, the repository of the executable, /opt/lipcast/models)"
    )]
    NotFound,
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "model pack file {file} does not match its manifest: sha256 is {actual}, manifest says {expected}"
    )]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("model pack {pack} has no file with role {role:?}")]
    MissingRole { pack: String, role: String },
}

/// One input or output tensor a file declares.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    /// Dimensions; -1 for a dynamic one.
    pub shape: Vec<i64>,
}

/// One file of the pack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    /// What the worker uses it for: `face_detector`, `face_mesh`, `mouth` (built-in pack); later `audio`,
    /// `generate`, ...
    pub role: String,
    /// Relative to the pack folder; no `..`.
    pub path: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
}

/// Output of the renderer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Long side of the rendered frames (the portrait's working resolution), pixels; even.
    pub max_long_side: u32,
}

/// `manifest.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Video frame rate the pack renders at.
    pub fps: u32,
    /// The pack's preferred audio front end: `dsp` (built in, needs no file) or `network` (needs a file with role
    /// `mouth`). `AUDIO_FRONTEND` overrides it (`audio::FrontendKind::resolve`).
    pub frontend: String,
    /// Renderer kind: `warp` (the landmark warp of `avatar::render`).
    pub renderer: String,
    pub output: OutputSpec,
    pub files: Vec<PackFile>,
}

/// A verified pack.
#[derive(Debug, Clone)]
pub struct ModelPack {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelPack {
    /// Reads `dir/manifest.toml`, validates it and checks every file's sha256. A missing, extra-path or altered
    /// file is an error naming it.
    pub fn load(dir: &Path) -> Result<Self, PackError> {
        let manifest_path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| PackError::Io {
            path: manifest_path.clone(),
            source,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| PackError::Manifest {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| PackError::Manifest {
            path: manifest_path.clone(),
            reason,
        };
        if manifest.fps == 0 || manifest.fps > 120 {
            return Err(bad(format!("fps {} out of range 1..=120", manifest.fps)));
        }
        let side = manifest.output.max_long_side;
        if !(64..=4096).contains(&side) || !side.is_multiple_of(2) {
            return Err(bad(format!(
                "output.max_long_side {side} must be even and within 64..=4096"
            )));
        }
        match manifest.frontend.as_str() {
            "dsp" => {}
            "network" if manifest.files.iter().any(|f| f.role == "mouth") => {}
            "network" => {
                return Err(bad(
                    "frontend = \"network\" needs a [[files]] entry with role \"mouth\"".into(),
                ));
            }
            other => {
                return Err(bad(format!(
                    "frontend {other:?} is not one of \"dsp\", \"network\""
                )));
            }
        }
        if manifest.files.is_empty() {
            return Err(bad("no files listed".into()));
        }
        for f in &manifest.files {
            let rel = Path::new(&f.path);
            if f.path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(bad(format!(
                    "file path {:?} must be relative and stay inside the pack",
                    f.path
                )));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("sha256 of {} is not 64 hex digits", f.path)));
            }
            let actual = sha256_file(&dir.join(rel))?;
            if !actual.eq_ignore_ascii_case(&f.sha256) {
                return Err(PackError::HashMismatch {
                    file: dir.join(rel).display().to_string(),
                    expected: f.sha256.to_ascii_lowercase(),
                    actual,
                });
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The built-in pack (`<models dir>/builtin`).
    pub fn builtin() -> Result<Self, PackError> {
        Self::load(&models_dir().ok_or(PackError::NotFound)?.join("builtin"))
    }

    /// The file with `role`.
    pub fn file(&self, role: &str) -> Result<&PackFile, PackError> {
        self.manifest
            .files
            .iter()
            .find(|f| f.role == role)
            .ok_or_else(|| PackError::MissingRole {
                pack: self.manifest.name.clone(),
                role: role.to_string(),
            })
    }

    /// Absolute path of the file with `role`.
    pub fn path(&self, role: &str) -> Result<PathBuf, PackError> {
        Ok(self.dir.join(&self.file(role)?.path))
    }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, PackError> {
    let io = |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The `models/` folder: `LIPCAST_MODELS_DIR`, else `models/` beside the current directory, else the repository
/// holding the executable (walking up from `target/<profile>/`), else `/opt/lipcast/models`.
pub fn models_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LIPCAST_MODELS_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join("models"));
        // `cargo test` runs in the crate folder (worker/): its workspace's models/ is one level up.
        if let Some(parent) = cwd.parent() {
            dirs.push(parent.join("models"));
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).map(|a| a.join("models")));
    }
    dirs.push(PathBuf::from("/opt/lipcast/models"));
    dirs.into_iter()
        .find(|d| d.join("builtin").join("manifest.toml").is_file())
}

/// The shipped default portrait (`<models dir>/portraits/default.jpg`).
pub fn default_portrait() -> Option<PathBuf> {
    models_dir()
        .map(|d| d.join("portraits").join("default.jpg"))
        .filter(|p| p.is_file())
}
