//! Model packs from a URL (`MODEL_PACK_URL` + `MODEL_PACK_SHA256`): downloaded once into `DATA_DIR/packs/`,
//! checked against the sha256, unpacked safely and reused on later starts without the network.
//!
//! Layout of `DATA_DIR/packs/`:
//! - `<sha256>/`: an unpacked pack, put there by one atomic rename once complete, with the marker
//!   `.lipcast-download.json` (the sha256, the URL, where `manifest.toml` is inside).
//! - `.part-<sha256>`: an archive being downloaded (resumed after a restart, removed once unpacked or when
//!   it does not match the sha256).
//! - `.unpack-<sha256>-<pid>/`: an unpacking in progress (removed on failure; stale ones at start).
//!
//! - [`download`]: HTTP with retries, resumption, stall timeout and size limit.
//! - [`unpack`]: archive formats and the safety rules.

pub mod download;
pub mod unpack;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use download::Progress;

/// Where a download stands, for `/ready`'s detail.
#[derive(Debug, Clone, Copy)]
pub enum Status {
    Downloading(Progress),
    Verifying,
    Unpacking,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Downloading(p) => {
                write!(f, "the model pack is downloading from MODEL_PACK_URL: {p}")
            }
            Status::Verifying => {
                write!(
                    f,
                    "the model pack from MODEL_PACK_URL is downloaded; checking its sha256"
                )
            }
            Status::Unpacking => {
                write!(
                    f,
                    "the model pack from MODEL_PACK_URL is verified; unpacking it"
                )
            }
        }
    }
}

/// The marker file inside a completed pack folder.
pub const MARKER: &str = ".lipcast-download.json";

/// Where a pack comes from, checked from the settings.
#[derive(Debug, Clone)]
pub struct Source {
    pub url: url::Url,
    /// Lower-case hex.
    pub sha256: String,
    /// Limit on the archive and, separately, on what it unpacks to.
    pub max_bytes: u64,
    pub stall: Duration,
    pub backoff: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{0}")]
    Download(#[from] download::DownloadError),
    #[error(
        "the downloaded pack archive does not match MODEL_PACK_SHA256: its sha256 is {actual}, expected {expected}"
    )]
    Mismatch { expected: String, actual: String },
    #[error("unpacking the pack archive: {0}")]
    Unpack(#[from] unpack::UnpackError),
    #[error(
        "the archive holds no model pack: manifest.toml is neither at its root nor in its single top folder"
    )]
    NoManifest,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PackError {
    let path = path.to_path_buf();
    move |source| PackError::Io { what, path, source }
}

/// Checks `MODEL_PACK_SHA256`: 64 hex digits, returned in lower case.
pub fn parse_sha256(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "MODEL_PACK_SHA256 must be the archive's sha256 as 64 hex digits (got {} characters)",
            s.len()
        ))
    }
}

/// Checks `MODEL_PACK_URL`: http or https only.
pub fn parse_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s.trim()).map_err(|e| format!("MODEL_PACK_URL is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        other => Err(format!(
            "MODEL_PACK_URL must be an http:// or https:// URL (got {other}://)"
        )),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    sha256: String,
    url: String,
    /// Folder of `manifest.toml`, relative to the pack folder ("" for its root).
    root: String,
    archive_bytes: u64,
    unpacked_bytes: u64,
}

/// The pack folder of a completed earlier download of `sha256` under `packs`, if there is a sound one.
pub fn installed(packs: &Path, sha256: &str) -> Option<PathBuf> {
    let dir = packs.join(sha256);
    let text = std::fs::read_to_string(dir.join(MARKER)).ok()?;
    let marker: Marker = serde_json::from_str(&text).ok()?;
    if marker.sha256 != sha256 {
        return None;
    }
    let rel = Path::new(&marker.root);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let root = dir.join(rel);
    root.join("manifest.toml").is_file().then_some(root)
}

/// Makes sure the pack is in `packs` (reusing an earlier download, else downloading, checking and
/// unpacking it) and returns the folder holding its `manifest.toml`. `status` hears how far it is.
pub async fn ensure(
    source: &Source,
    packs: &Path,
    status: &(dyn Fn(Status) + Send + Sync),
) -> Result<PathBuf, PackError> {
    tokio::fs::create_dir_all(packs)
        .await
        .map_err(io("creating", packs))?;
    if let Some(root) = installed(packs, &source.sha256) {
        tracing::info!(pack = %root.display(), sha256 = %source.sha256,
            "model pack from MODEL_PACK_URL already downloaded: reusing it");
        return Ok(root);
    }
    remove_stale(packs, &source.sha256).await;
    let part = packs.join(format!(".part-{}", source.sha256));
    let fetch = download::Fetch {
        url: source.url.clone(),
        max_bytes: source.max_bytes,
        stall: source.stall,
        backoff: source.backoff,
    };
    let archive_bytes =
        download::download(&fetch, &part, &|p| status(Status::Downloading(p))).await?;
    status(Status::Verifying);

    let started = Instant::now();
    let actual = {
        let p = part.clone();
        tokio::task::spawn_blocking(move || sha256_file(&p))
            .await
            .map_err(|e| PackError::Internal(format!("hashing panicked: {e}")))?
            .map_err(io("reading", &part))?
    };
    if actual != source.sha256 {
        // Nothing half-done stays behind: the next start downloads afresh.
        let _ = tokio::fs::remove_file(&part).await;
        return Err(PackError::Mismatch {
            expected: source.sha256.clone(),
            actual,
        });
    }
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "model pack archive sha256 verified"
    );

    status(Status::Unpacking);
    let tmp = packs.join(format!(".unpack-{}-{}", source.sha256, std::process::id()));
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    tokio::fs::create_dir(&tmp)
        .await
        .map_err(io("creating", &tmp))?;
    let unpacked = {
        let (part, tmp, limit) = (part.clone(), tmp.clone(), source.max_bytes);
        tokio::task::spawn_blocking(move || unpack_checked(&part, &tmp, limit))
            .await
            .map_err(|e| PackError::Internal(format!("unpacking panicked: {e}")))
    };
    let (root, unpacked_bytes) = match unpacked.and_then(|r| r) {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    let marker = Marker {
        sha256: source.sha256.clone(),
        url: download::redact(&source.url),
        root: root.display().to_string(),
        archive_bytes,
        unpacked_bytes,
    };
    let finish = async {
        let text = serde_json::to_string_pretty(&marker)
            .map_err(|e| PackError::Internal(e.to_string()))?;
        tokio::fs::write(tmp.join(MARKER), text)
            .await
            .map_err(io("writing", &tmp.join(MARKER)))?;
        let dest = packs.join(&source.sha256);
        // A folder there without a sound marker is debris from some other hand: replace it.
        let _ = tokio::fs::remove_dir_all(&dest).await;
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(io("renaming into", &dest))?;
        sync_dir(packs);
        Ok::<_, PackError>(dest.join(&root))
    };
    let dest = match finish.await {
        Ok(d) => d,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(e);
        }
    };
    let _ = tokio::fs::remove_file(&part).await;
    tracing::info!(pack = %dest.display(), archive_bytes, unpacked_bytes,
        ms = started.elapsed().as_millis() as u64, "model pack unpacked");
    Ok(dest)
}

/// Unpacks and finds the pack root (relative to `tmp`).
fn unpack_checked(part: &Path, tmp: &Path, limit: u64) -> Result<(PathBuf, u64), PackError> {
    let bytes = unpack::unpack(part, tmp, limit)?;
    let root = unpack::find_root(tmp).ok_or(PackError::NoManifest)?;
    Ok((root, bytes))
}

/// Removes unpack folders left by an earlier run that died half-way.
async fn remove_stale(packs: &Path, sha256: &str) {
    let prefix = format!(".unpack-{sha256}-");
    let Ok(mut dir) = tokio::fs::read_dir(packs).await else {
        return;
    };
    while let Ok(Some(e)) = dir.next_entry().await {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(path = %e.path().display(), "removing a half-unpacked pack from an earlier run");
            let _ = tokio::fs::remove_dir_all(e.path()).await;
        }
    }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Makes a rename durable (best effort: a failure only weakens crash safety).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_file_and_the_setting() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap_or_else(|e| panic!("{e}"));
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&p).ok().as_deref(), Some(want));
        assert_eq!(
            parse_sha256(&want.to_uppercase()).ok().as_deref(),
            Some(want)
        );
        assert!(parse_sha256(&want[1..]).is_err());
        assert!(parse_sha256(&format!("{}g", &want[1..])).is_err());
        assert!(parse_url("https://example.invalid/pack.tgz").is_ok());
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("ftp://example.invalid/p.tgz").is_err());
    }

    #[test]
    fn only_a_sound_marker_counts_as_installed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sha = "a".repeat(64);
        let pack = dir.path().join(&sha).join("top");
        std::fs::create_dir_all(&pack).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(pack.join("manifest.toml"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(installed(dir.path(), &sha), None, "no marker yet");
        let marker = |sha: &str, root: &str| {
            serde_json::json!({"sha256": sha, "url": "http://x/", "root": root,
                "archive_bytes": 1, "unpacked_bytes": 1})
            .to_string()
        };
        let at = dir.path().join(&sha).join(MARKER);
        std::fs::write(&at, marker(&"b".repeat(64), "top")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(installed(dir.path(), &sha), None, "another sha256");
        std::fs::write(&at, marker(&sha, "../top")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(installed(dir.path(), &sha), None, "a root outside");
        std::fs::write(&at, marker(&sha, "top")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(installed(dir.path(), &sha), Some(pack));
    }
}
