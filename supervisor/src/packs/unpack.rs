//! Unpacking a downloaded pack archive (tar, gzip-compressed tar, zip) into a folder, refusing anything that
//! could write outside it or fill the disk.
//!
//! The format is told by the archive's first bytes, not by its name (URLs often have none). Only regular
//! files and folders are written: symlinks, hardlinks, device files and FIFOs are refused, as are absolute
//! paths and `..`. Sizes are counted as bytes are actually written, so a header that lies about its size (or
//! a decompression bomb) stops at the limit.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Most entries one archive may hold (against inode exhaustion).
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the archive: {0}")]
    Io(#[from] io::Error),
    #[error("the download is not a tar, tar.gz or zip archive")]
    UnknownFormat,
    #[error("the archive entry {0:?} has an unsafe path (absolute, or with ..)")]
    UnsafePath(String),
    #[error("the archive entry {path:?} is a {kind}; only regular files and folders are allowed")]
    ForbiddenKind { path: String, kind: &'static str },
    #[error("the archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the archive has more than {0} entries")]
    TooManyEntries(usize),
    #[error("the archive is damaged: {0}")]
    Corrupt(String),
}

/// What an archive looks like from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    Zip,
}

/// Tells the format from the first bytes (gzip: 1f 8b; zip: PK\x03\x04 or an empty archive's PK\x05\x06;
/// tar: "ustar" at offset 257).
pub fn sniff(path: &Path) -> Result<Format, UnpackError> {
    let mut head = [0u8; 512];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        let got = f.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Format::TarGz)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(Format::Zip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok(Format::Tar)
    } else {
        Err(UnpackError::UnknownFormat)
    }
}

/// Unpacks `archive` into the existing, empty folder `dest`, writing at most `limit` bytes. Returns the
/// bytes written.
pub fn unpack(archive: &Path, dest: &Path, limit: u64) -> Result<u64, UnpackError> {
    unpack_with(archive, dest, limit, MAX_ENTRIES)
}

fn unpack_with(
    archive: &Path,
    dest: &Path,
    limit: u64,
    max_entries: usize,
) -> Result<u64, UnpackError> {
    let mut budget = Budget {
        limit,
        used: 0,
        entries: 0,
        max_entries,
    };
    match sniff(archive)? {
        Format::Tar => unpack_tar(BufReader::new(File::open(archive)?), dest, &mut budget)?,
        Format::TarGz => unpack_tar(
            flate2::read::MultiGzDecoder::new(BufReader::new(File::open(archive)?)),
            dest,
            &mut budget,
        )?,
        Format::Zip => unpack_zip(File::open(archive)?, dest, &mut budget)?,
    }
    Ok(budget.used)
}

struct Budget {
    limit: u64,
    used: u64,
    entries: usize,
    max_entries: usize,
}

impl Budget {
    fn entry(&mut self) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.max_entries {
            return Err(UnpackError::TooManyEntries(self.max_entries));
        }
        Ok(())
    }
}

/// The entry's path below `dest`, or an error if it would leave it. Empty paths (`./`) give `None`.
fn safe_join(dest: &Path, name: &str) -> Result<Option<PathBuf>, UnpackError> {
    let unsafe_path = || UnpackError::UnsafePath(name.to_owned());
    if name.contains('\0') || name.contains('\\') {
        return Err(unsafe_path());
    }
    let mut rel = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path());
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Ok(None);
    }
    Ok(Some(dest.join(rel)))
}

/// Creates the parent folders of `path` (all below `dest`, which exists). A parent that exists as anything
/// but a real folder (a file, or a symlink planted some other way) is refused.
fn make_parents(dest: &Path, path: &Path, name: &str) -> Result<(), UnpackError> {
    let parent = path.parent().unwrap_or(dest);
    let rel = parent
        .strip_prefix(dest)
        .map_err(|_| UnpackError::UnsafePath(name.to_owned()))?;
    let mut at = dest.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(UnpackError::UnsafePath(name.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&at)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes one regular file from `data`, counting every byte against the budget. An existing entry of the
/// same name (a duplicate in the archive) is refused rather than followed or overwritten.
fn write_file(
    dest: &Path,
    path: &Path,
    name: &str,
    data: &mut dyn Read,
    budget: &mut Budget,
) -> Result<(), UnpackError> {
    make_parents(dest, path, name)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => UnpackError::Corrupt(format!("{name:?} appears twice")),
            _ => e.into(),
        })?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = data.read(&mut buf)?;
        if n == 0 {
            break;
        }
        budget.used += n as u64;
        if budget.used > budget.limit {
            return Err(UnpackError::TooLarge {
                limit: budget.limit,
            });
        }
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(())
}

fn make_dir(dest: &Path, path: &Path, name: &str) -> Result<(), UnpackError> {
    make_parents(dest, path, name)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(_) => Err(UnpackError::UnsafePath(name.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(std::fs::create_dir(path)?),
        Err(e) => Err(e.into()),
    }
}

fn unpack_tar(reader: impl Read, dest: &Path, budget: &mut Budget) -> Result<(), UnpackError> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| UnpackError::Corrupt(e.to_string()))?;
        let kind = entry.header().entry_type();
        // Metadata entries (pax headers, GNU long names) are consumed by the tar crate or carry nothing.
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) {
            continue;
        }
        budget.entry()?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let forbidden = |kind: &'static str| UnpackError::ForbiddenKind {
            path: name.clone(),
            kind,
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                if let Some(path) = safe_join(dest, &name)? {
                    write_file(dest, &path, &name, &mut entry, budget)?;
                }
            }
            EntryType::Directory => {
                if let Some(path) = safe_join(dest, &name)? {
                    make_dir(dest, &path, &name)?;
                }
            }
            EntryType::Symlink => return Err(forbidden("symlink")),
            EntryType::Link => return Err(forbidden("hardlink")),
            EntryType::Char | EntryType::Block => return Err(forbidden("device file")),
            EntryType::Fifo => return Err(forbidden("FIFO")),
            _ => return Err(forbidden("special entry")),
        }
    }
    Ok(())
}

/// Unix file type bits in a zip entry's external attributes (upper 16 bits, as Info-ZIP writes them).
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

fn unpack_zip(file: File, dest: &Path, budget: &mut Budget) -> Result<(), UnpackError> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    if zip.len() > budget.max_entries {
        return Err(UnpackError::TooManyEntries(budget.max_entries));
    }
    for i in 0..zip.len() {
        budget.entry()?;
        let mut entry = zip
            .by_index(i)
            .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if let Some(mode) = entry.unix_mode() {
            match mode & S_IFMT {
                0 | S_IFREG | S_IFDIR => {}
                S_IFLNK => {
                    return Err(UnpackError::ForbiddenKind {
                        path: name,
                        kind: "symlink",
                    });
                }
                _ => {
                    return Err(UnpackError::ForbiddenKind {
                        path: name,
                        kind: "special entry",
                    });
                }
            }
        }
        let Some(path) = safe_join(dest, &name)? else {
            continue;
        };
        if entry.is_dir() {
            make_dir(dest, &path, &name)?;
        } else {
            write_file(dest, &path, &name, &mut entry, budget)?;
        }
    }
    Ok(())
}

/// Where the pack is inside the unpacked folder: `manifest.toml` at its root, or at the root of its one
/// top-level folder (what `tar czf pack.tgz mypack/` makes). Returns the path relative to `dir`.
pub fn find_root(dir: &Path) -> Option<PathBuf> {
    if is_file(&dir.join("manifest.toml")) {
        return Some(PathBuf::new());
    }
    let entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    match entries.as_slice() {
        [only] if only.file_type().is_ok_and(|t| t.is_dir()) => {
            let name = PathBuf::from(only.file_name());
            is_file(&dir.join(&name).join("manifest.toml")).then_some(name)
        }
        _ => None,
    }
}

fn is_file(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// One raw tar entry, written without the tar crate's own path checks (to build hostile archives).
    fn entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, data: &[u8], link: &str) {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn finish(mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
        e.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    struct Case {
        dir: tempfile::TempDir,
    }

    impl Case {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            std::fs::create_dir(dir.path().join("out")).unwrap_or_else(|e| panic!("{e}"));
            Case { dir }
        }
        fn out(&self) -> PathBuf {
            self.dir.path().join("out")
        }
        fn run(&self, archive: &[u8], limit: u64) -> Result<u64, UnpackError> {
            let p = self.dir.path().join("archive");
            std::fs::write(&p, archive).unwrap_or_else(|e| panic!("{e}"));
            unpack(&p, &self.out(), limit)
        }
        /// Everything in the temp folder, relative, so tests can show nothing escaped.
        fn listing(&self) -> Vec<String> {
            fn walk(base: &Path, at: &Path, out: &mut Vec<String>) {
                for e in std::fs::read_dir(at).into_iter().flatten().flatten() {
                    let p = e.path();
                    out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(base, &p, out);
                    }
                }
            }
            let mut v = Vec::new();
            walk(self.dir.path(), self.dir.path(), &mut v);
            v.sort();
            v
        }
    }

    fn pack_tar() -> Vec<u8> {
        let mut t = Vec::new();
        entry(&mut t, "mypack/", tar::EntryType::Directory, b"", "");
        entry(
            &mut t,
            "mypack/manifest.toml",
            tar::EntryType::Regular,
            b"name = \"x\"\n",
            "",
        );
        entry(
            &mut t,
            "mypack/sub/a.onnx",
            tar::EntryType::Regular,
            &[7u8; 3000],
            "",
        );
        finish(t)
    }

    #[test]
    fn good_tar_and_tar_gz_unpack_with_a_top_folder() {
        for archive in [pack_tar(), gzip(&pack_tar())] {
            let c = Case::new();
            let n = c.run(&archive, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(n, 3011);
            assert_eq!(find_root(&c.out()), Some(PathBuf::from("mypack")));
            let a = std::fs::read(c.out().join("mypack/sub/a.onnx")).unwrap_or_default();
            assert_eq!(a, vec![7u8; 3000]);
        }
    }

    #[test]
    fn the_format_comes_from_the_bytes_not_the_name() {
        let c = Case::new();
        let p = c.dir.path().join("pack.zip");
        std::fs::write(&p, gzip(&pack_tar())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sniff(&p).ok(), Some(Format::TarGz));
        std::fs::write(&p, pack_tar()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sniff(&p).ok(), Some(Format::Tar));
        assert!(matches!(
            c.run(b"<html>not found</html>", 1 << 20),
            Err(UnpackError::UnknownFormat)
        ));
    }

    #[test]
    fn traversal_and_absolute_paths_are_refused() {
        for name in [
            "../evil",
            "mypack/../../evil",
            "/tmp/lipcast-evil-abs",
            "./../evil",
        ] {
            let c = Case::new();
            let mut t = Vec::new();
            entry(&mut t, "ok.txt", tar::EntryType::Regular, b"fine", "");
            entry(&mut t, name, tar::EntryType::Regular, b"evil", "");
            let r = c.run(&finish(t), 1 << 20);
            assert!(
                matches!(r, Err(UnpackError::UnsafePath(_))),
                "{name}: {r:?}"
            );
            assert!(
                !c.listing().iter().any(|p| p.contains("evil")),
                "{name}: {:?}",
                c.listing()
            );
        }
        assert!(!Path::new("/tmp/lipcast-evil-abs").exists());
    }

    #[test]
    fn links_and_devices_are_refused() {
        let kinds = [
            (tar::EntryType::Symlink, "/etc/passwd", "symlink"),
            (tar::EntryType::Symlink, "../../outside", "symlink"),
            (tar::EntryType::Link, "/etc/passwd", "hardlink"),
            (tar::EntryType::Char, "", "device file"),
            (tar::EntryType::Block, "", "device file"),
            (tar::EntryType::Fifo, "", "FIFO"),
        ];
        for (kind, link, what) in kinds {
            let c = Case::new();
            let mut t = Vec::new();
            entry(&mut t, "link", kind, b"", link);
            // The classic follow-up: write through the link.
            entry(&mut t, "link/passwd", tar::EntryType::Regular, b"owned", "");
            match c.run(&finish(t), 1 << 20) {
                Err(UnpackError::ForbiddenKind { kind, .. }) => assert_eq!(kind, what),
                other => panic!("{what}: {other:?}"),
            }
            assert!(std::fs::symlink_metadata(c.out().join("link")).is_err());
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let c = Case::new();
        let mut t = Vec::new();
        entry(
            &mut t,
            "zeros",
            tar::EntryType::Regular,
            &vec![0u8; 8 << 20],
            "",
        );
        let bomb = gzip(&finish(t));
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let r = c.run(&bomb, 1 << 20);
        assert!(
            matches!(r, Err(UnpackError::TooLarge { limit }) if limit == 1 << 20),
            "{r:?}"
        );
        // Many small files add up the same way.
        let c = Case::new();
        let mut t = Vec::new();
        for i in 0..40 {
            entry(
                &mut t,
                &format!("f{i}"),
                tar::EntryType::Regular,
                &[1u8; 40_000],
                "",
            );
        }
        assert!(matches!(
            c.run(&finish(t), 1 << 20),
            Err(UnpackError::TooLarge { .. })
        ));
    }

    #[test]
    fn too_many_entries_are_refused() {
        let c = Case::new();
        let mut t = Vec::new();
        for i in 0..=100 {
            entry(
                &mut t,
                &format!("d{i}/"),
                tar::EntryType::Directory,
                b"",
                "",
            );
        }
        let p = c.dir.path().join("archive");
        std::fs::write(&p, finish(t)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            unpack_with(&p, &c.out(), 1 << 20, 100),
            Err(UnpackError::TooManyEntries(100))
        ));
        let fresh = c.dir.path().join("fresh");
        std::fs::create_dir(&fresh).unwrap_or_else(|e| panic!("{e}"));
        assert!(unpack_with(&p, &fresh, 1 << 20, 101).is_ok());
    }

    #[test]
    fn a_duplicate_entry_does_not_overwrite() {
        let c = Case::new();
        let mut t = Vec::new();
        entry(
            &mut t,
            "manifest.toml",
            tar::EntryType::Regular,
            b"first",
            "",
        );
        entry(
            &mut t,
            "manifest.toml",
            tar::EntryType::Regular,
            b"second",
            "",
        );
        assert!(matches!(
            c.run(&finish(t), 1 << 20),
            Err(UnpackError::Corrupt(_))
        ));
    }

    fn zip_of(build: impl FnOnce(&mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        build(&mut z);
        z.finish().unwrap_or_else(|e| panic!("{e}")).into_inner()
    }

    fn opts() -> zip::write::SimpleFileOptions {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
    }

    #[test]
    fn zip_archives_unpack_under_the_same_rules() {
        let good = zip_of(|z| {
            z.start_file("manifest.toml", opts())
                .and_then(|()| Ok(z.write_all(b"name = \"x\"\n")?))
                .unwrap_or_else(|e| panic!("{e}"));
            z.start_file("models/a.onnx", opts())
                .and_then(|()| Ok(z.write_all(&[3u8; 5000])?))
                .unwrap_or_else(|e| panic!("{e}"));
        });
        let c = Case::new();
        assert_eq!(c.run(&good, 1 << 20).ok(), Some(5011));
        assert_eq!(find_root(&c.out()), Some(PathBuf::new()));

        let evil = zip_of(|z| {
            z.start_file("../evil", opts())
                .and_then(|()| Ok(z.write_all(b"x")?))
                .unwrap_or_else(|e| panic!("{e}"));
        });
        let c = Case::new();
        assert!(matches!(
            c.run(&evil, 1 << 20),
            Err(UnpackError::UnsafePath(_))
        ));
        assert!(!c.listing().iter().any(|p| p.contains("evil")));

        let link = zip_of(|z| {
            z.add_symlink("link", "/etc", opts())
                .unwrap_or_else(|e| panic!("{e}"));
        });
        let c = Case::new();
        assert!(matches!(
            c.run(&link, 1 << 20),
            Err(UnpackError::ForbiddenKind {
                kind: "symlink",
                ..
            })
        ));

        let bomb = zip_of(|z| {
            z.start_file("zeros", opts())
                .and_then(|()| Ok(z.write_all(&vec![0u8; 8 << 20])?))
                .unwrap_or_else(|e| panic!("{e}"));
        });
        let c = Case::new();
        assert!(matches!(
            c.run(&bomb, 1 << 20),
            Err(UnpackError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_root_is_the_archive_root_or_its_single_top_folder() {
        let c = Case::new();
        let mut t = Vec::new();
        entry(&mut t, "a/manifest.toml", tar::EntryType::Regular, b"x", "");
        entry(&mut t, "b/manifest.toml", tar::EntryType::Regular, b"x", "");
        c.run(&finish(t), 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find_root(&c.out()), None);
    }
}
