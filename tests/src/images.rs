//! Hostile and odd images for the bad-input corpus and the SSRF tests, generated deterministically: images
//! without a face, truncated, corrupt and decompression-bomb files, and formats lipcast does not take.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A small deterministic generator (xorshift), so the corpus is the same on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("encoding a {format:?} test image: {e}"));
    out.into_inner()
}

fn flat(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb([190, 160, 140])))
}

fn noise(w: u32, h: u32) -> DynamicImage {
    let mut n = Noise(0x9E37_79B9_7F4A_7C15);
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |_, _| {
        Rgb([n.next(), n.next(), n.next()])
    }))
}

fn gradient(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
    }))
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Byte offset of the first PNG chunk named `tag` (its length field).
fn png_chunk(png: &[u8], tag: &[u8; 4]) -> usize {
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        if &png[at + 4..at + 8] == tag {
            return at;
        }
        at += 12 + len;
    }
    panic!("no {} chunk", String::from_utf8_lossy(tag));
}

/// A real PNG whose header (with a correct checksum) claims `w` x `h` pixels.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = encode(&flat(4, 4), ImageFormat::Png);
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn truncated(mut bytes: Vec<u8>, percent: usize) -> Vec<u8> {
    bytes.truncate(bytes.len() * percent / 100);
    bytes
}

/// The portrait shipped with lipcast (it has a face).
fn face_jpeg() -> Vec<u8> {
    crate::paths::default_portrait()
}

/// The image (or image-like file) called `name`; panics on an unknown name.
pub fn generate(name: &str) -> Vec<u8> {
    let png = ImageFormat::Png;
    let jpeg = ImageFormat::Jpeg;
    match name {
        // Without a face.
        "png_flat_256" => encode(&flat(256, 256), png),
        "png_noise_256" => encode(&noise(256, 256), png),
        "png_1x1" => encode(&flat(1, 1), png),
        "png_wide_4000x8" => encode(&flat(4000, 8), png),
        "png_tall_8x4000" => encode(&flat(8, 4000), png),
        "png_gray_256" => encode(&DynamicImage::ImageLuma8(flat(256, 256).to_luma8()), png),
        "png_rgba_256" => encode(&DynamicImage::ImageRgba8(flat(256, 256).to_rgba8()), png),
        "jpeg_flat_256" => encode(&flat(256, 256), jpeg),
        "jpeg_gradient_320x240" => encode(&gradient(320, 240), jpeg),
        "webp_flat_256" => encode(&flat(256, 256), ImageFormat::WebP),
        // Truncated and corrupt.
        "png_truncated_10" => truncated(generate("png_noise_256"), 10),
        "png_truncated_50" => truncated(generate("png_noise_256"), 50),
        "png_truncated_90" => truncated(generate("png_noise_256"), 90),
        "jpeg_truncated_10" => truncated(face_jpeg(), 10),
        "jpeg_truncated_50" => truncated(face_jpeg(), 50),
        "jpeg_truncated_90" => truncated(face_jpeg(), 90),
        "jpeg_truncated_99" => truncated(face_jpeg(), 99),
        "webp_truncated_50" => truncated(encode(&noise(128, 128), ImageFormat::WebP), 50),
        "webp_truncated_90" => truncated(encode(&noise(128, 128), ImageFormat::WebP), 90),
        "png_bad_crc" => {
            let mut p = generate("png_noise_256");
            let at = png_chunk(&p, b"IDAT");
            let len = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]) as usize;
            p[at + 8 + len] ^= 0xFF;
            p
        }
        "png_garbage_idat" => {
            let mut p = generate("png_noise_256");
            let at = png_chunk(&p, b"IDAT");
            let len = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]) as usize;
            let garbage = Noise(7).bytes(len);
            p[at + 8..at + 8 + len].copy_from_slice(&garbage);
            let crc = crc32(&p[at + 4..at + 8 + len]);
            p[at + 8 + len..at + 12 + len].copy_from_slice(&crc.to_be_bytes());
            p
        }
        "png_flipped" => {
            let mut p = generate("png_noise_256");
            let mid = p.len() / 2;
            for b in &mut p[mid..mid + 64] {
                *b = !*b;
            }
            p
        }
        "jpeg_flipped" => {
            let mut j = generate("jpeg_gradient_320x240");
            let mid = j.len() / 2;
            for b in &mut j[mid..mid + 32] {
                *b = b.wrapping_add(77);
            }
            j
        }
        "jpeg_zeroed_scan" => {
            let mut j = generate("jpeg_gradient_320x240");
            let mid = j.len() / 2;
            j[mid..mid + 256].fill(0);
            j
        }
        "png_noise_magic" => [b"\x89PNG\r\n\x1a\n".to_vec(), Noise(11).bytes(600)].concat(),
        "jpeg_noise_magic" => [vec![0xFF, 0xD8, 0xFF, 0xE0], Noise(13).bytes(600)].concat(),
        "png_magic" => b"\x89PNG\r\n\x1a\n".to_vec(),
        "jpeg_soi" => vec![0xFF, 0xD8, 0xFF],
        "webp_riff" => b"RIFF\x04\x00\x00\x00WEBP".to_vec(),
        // Decompression bombs: tiny files that claim huge pictures.
        "png_bomb_100000" => png_claiming(100_000, 100_000),
        "png_bomb_5001x5000" => png_claiming(5001, 5000),
        "png_bomb_max" => png_claiming(0x7FFF_FFFF, 0x7FFF_FFFF),
        "png_zero_width" => png_claiming(0, 64),
        "jpeg_bomb_65500" => {
            let mut j = generate("jpeg_flat_256");
            let sof = j
                .windows(2)
                .position(|w| w == [0xFF, 0xC0])
                .unwrap_or_else(|| panic!("no SOF0 in the test JPEG"));
            j[sof + 5..sof + 7].copy_from_slice(&65_500u16.to_be_bytes());
            j[sof + 7..sof + 9].copy_from_slice(&65_500u16.to_be_bytes());
            j
        }
        "webp_bomb_16384" => {
            // Lossless WebP: after "VP8L", its size and the signature byte 0x2f come 14 bits of width-1
            // and 14 of height-1.
            let mut w = encode(&flat(16, 16), ImageFormat::WebP);
            let at = w
                .windows(4)
                .position(|x| x == b"VP8L")
                .unwrap_or_else(|| panic!("the test WebP is not lossless"))
                + 9;
            let old = u32::from_le_bytes([w[at], w[at + 1], w[at + 2], w[at + 3]]);
            let new = (old & !0x0FFF_FFFF) | 16_383 | (16_383 << 14);
            w[at..at + 4].copy_from_slice(&new.to_le_bytes());
            w
        }
        // Formats lipcast does not take (real or realistic headers).
        "gif" => b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec(),
        "bmp" => {
            let mut b = b"BM".to_vec();
            b.extend_from_slice(&70u32.to_le_bytes());
            b.extend_from_slice(&[0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0]);
            b.extend_from_slice(&2i32.to_le_bytes());
            b.extend_from_slice(&2i32.to_le_bytes());
            b.extend_from_slice(&[1, 0, 24, 0, 0, 0, 0, 0, 16, 0, 0, 0]);
            b.extend_from_slice(&[0; 16]);
            b.extend_from_slice(&[255; 16]);
            b
        }
        "tiff_le" => b"II*\x00\x08\x00\x00\x00\x01\x00\x00\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00".to_vec(),
        "tiff_be" => b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x00\x00\x03\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00".to_vec(),
        "svg" => br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><image href="http://169.254.169.254/latest/meta-data/"/><circle cx="256" cy="256" r="200"/></svg>"#.to_vec(),
        "heic" => b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x08mdat".to_vec(),
        "avif" => b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf\x00\x00\x00\x08mdat".to_vec(),
        "ico" => b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00\x68\x04\x00\x00\x16\x00\x00\x00".to_vec(),
        "psd" => b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x10\x00\x00\x00\x10\x00\x08\x00\x03".to_vec(),
        "pdf" => b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec(),
        "html" => b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>".to_vec(),
        "elf" => [b"\x7fELF\x02\x01\x01\x00".to_vec(), vec![0; 56]].concat(),
        "zip" => b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00\x00\x00".to_vec(),
        "gzip_png" => [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03".to_vec(), generate("png_1x1")].concat(),
        "jxl" => b"\xff\x0a\xfa\x7f\x01\x90\x08\x06\x01\x00\x48\x00".to_vec(),
        "qoi" => b"qoif\x00\x00\x00\x10\x00\x00\x00\x10\x03\x00\x00\x00\x00\x00\x00\x00\x00\x01".to_vec(),
        other => panic!("no image generator {other:?}"),
    }
}
