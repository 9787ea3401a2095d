//! The portrait of a launch: uploaded, base64, fetched from a URL, or named by `avatar_id`; checked
//! to be a real JPEG/PNG/WebP image of bounded size before a session is admitted for it.

pub mod fetch;

use std::io::Cursor;
use std::path::Path;

use bytes::Bytes;
use image::{ImageFormat, ImageReader, Limits};

use fetch::Fetcher;

/// Where a launch's portrait comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// Uploaded file or decoded base64.
    Bytes(Bytes),
    /// An http(s) URL to fetch.
    Url(String),
}

/// A decoded-and-checked portrait, passed to the worker as the original bytes.
#[derive(Debug, Clone)]
pub struct Portrait {
    pub bytes: Bytes,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PortraitError {
    #[error("image format is not JPEG, PNG or WebP")]
    Format,
    #[error("image is {width}x{height} pixels; at most {max} pixels are accepted")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("image could not be decoded: {0}")]
    Decode(String),
}

/// Check that `bytes` is a complete JPEG/PNG/WebP image with at most `max_pixels` pixels.
pub fn check(bytes: Bytes, max_pixels: u64) -> Result<Portrait, PortraitError> {
    let reader = ImageReader::new(Cursor::new(bytes.as_ref()))
        .with_guessed_format()
        .map_err(|e| PortraitError::Decode(e.to_string()))?;
    if !matches!(
        reader.format(),
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)
    ) {
        return Err(PortraitError::Format);
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_complete(&bytes) {
        // Decoders fill a cut-off scan with grey rather than fail; a truncated upload is refused here.
        return Err(PortraitError::Decode(
            "the JPEG is truncated (no end-of-image marker after its last scan)".into(),
        ));
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| PortraitError::Decode(e.to_string()))?;
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > max_pixels {
        return Err(PortraitError::TooManyPixels {
            width,
            height,
            max: max_pixels,
        });
    }
    // Decode it fully, under allocation limits, so truncated or corrupt files are caught here.
    let mut reader = ImageReader::new(Cursor::new(bytes.as_ref()))
        .with_guessed_format()
        .map_err(|e| PortraitError::Decode(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| PortraitError::Decode(e.to_string()))?;
    Ok(Portrait {
        bytes,
        width,
        height,
    })
}

/// sha256 as lower-case hex (what tells a replayed launch from another: the portrait's bytes or URL).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True if an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Entropy-coded data
/// never holds FF D9 (an FF byte in it is always followed by 00 or a restart marker), and a thumbnail's
/// own markers come before the main image's last scan.
fn jpeg_complete(bytes: &[u8]) -> bool {
    let Some(last_scan) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Resolve the portrait of a launch. `None` means "use the shipped default portrait".
pub async fn resolve(
    image: Option<ImageSource>,
    avatar_id: Option<&str>,
    avatars_dir: &Path,
    fetcher: &Fetcher,
    max_pixels: u64,
) -> Result<Option<Portrait>, ResolveError> {
    let bytes = match (image, avatar_id) {
        (Some(ImageSource::Bytes(b)), _) => b,
        (Some(ImageSource::Url(url)), _) => fetcher
            .fetch(&url)
            .await
            .map_err(|e| ResolveError::FetchFailed(e.to_string()))?,
        (None, Some(id)) => named_avatar(avatars_dir, id).await?,
        (None, None) => return Ok(None),
    };
    let portrait = tokio::task::spawn_blocking(move || check(bytes, max_pixels))
        .await
        .map_err(|e| ResolveError::Internal {
            context: "image check panicked",
            cause: e.to_string(),
        })?
        .map_err(ResolveError::Invalid)?;
    Ok(Some(portrait))
}

/// Why a launch's portrait cannot be resolved (before any worker sees it).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The portrait URL could not be fetched (or resolves to a refused address).
    #[error("{0}")]
    FetchFailed(String),
    /// The bytes are not an image lipcast takes.
    #[error("{0}")]
    Invalid(PortraitError),
    /// No stored portrait has that `avatar_id`.
    #[error("{0}")]
    UnknownAvatar(String),
    /// A failure of ours: `context` is for the caller, `cause` for the log.
    #[error("{context}: {cause}")]
    Internal {
        context: &'static str,
        cause: String,
    },
}

async fn named_avatar(dir: &Path, id: &str) -> Result<Bytes, ResolveError> {
    for ext in ["jpg", "jpeg", "png", "webp"] {
        match tokio::fs::read(dir.join(format!("{id}.{ext}"))).await {
            Ok(b) => return Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ResolveError::Internal {
                    context: "reading a named avatar failed",
                    cause: e.to_string(),
                });
            }
        }
    }
    Err(ResolveError::UnknownAvatar(format!(
        "no portrait named {id:?} (looked for {}/{id}.jpg|.png|.webp)",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Bytes {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 150, 120]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).expect("encode");
        Bytes::from(out.into_inner())
    }

    #[test]
    fn accepts_real_images_and_refuses_the_rest() {
        let ok = check(png(64, 48), 1_000_000).expect("valid png");
        assert_eq!((ok.width, ok.height), (64, 48));
        assert!(matches!(
            check(png(64, 48), 100),
            Err(PortraitError::TooManyPixels { .. })
        ));
        assert!(matches!(
            check(Bytes::from_static(b"GIF89a...."), 1_000_000),
            Err(PortraitError::Format)
        ));
        assert!(matches!(
            check(Bytes::from_static(b"hello"), 1_000_000),
            Err(PortraitError::Format)
        ));
        let jpeg = {
            let img = image::RgbImage::from_pixel(64, 48, image::Rgb([10, 200, 30]));
            let mut out = Cursor::new(Vec::new());
            img.write_to(&mut out, ImageFormat::Jpeg).expect("encode");
            Bytes::from(out.into_inner())
        };
        assert!(check(jpeg.clone(), 1_000_000).is_ok());
        for cut in [jpeg.len() - 2, jpeg.len() * 9 / 10, jpeg.len() / 2] {
            assert!(
                matches!(
                    check(jpeg.slice(..cut), 1_000_000),
                    Err(PortraitError::Decode(_))
                ),
                "a JPEG cut at {cut} of {}",
                jpeg.len()
            );
        }
        let full = png(64, 48);
        let truncated = full.slice(..full.len() / 2);
        assert!(matches!(
            check(truncated, 1_000_000),
            Err(PortraitError::Decode(_))
        ));
    }
}
