//! `Benchmark` and `TestFrame`: the real feature and render path on synthetic speech (no LiveKit).

use lipcast_proto::{BenchmarkReply, TestFrameReply};

use super::prepared::{LoadError, Prepared};

/// Upper bound on iterations, so one request cannot hold a worker for minutes.
pub const MAX_ITERATIONS: u32 = 2_000;

/// Times `iterations` frames of synthetic speech through the pack's animation, per stage.
pub fn benchmark(prepared: &Prepared, iterations: u32) -> Result<BenchmarkReply, LoadError> {
    let n = iterations.clamp(1, MAX_ITERATIONS) as usize;
    let portrait = prepared.default_portrait();
    let t = prepared.animation().benchmark(
        &prepared.context(),
        portrait,
        prepared.renderer(portrait, 1),
        n,
    )?;
    Ok(BenchmarkReply {
        iterations: t.frames as u32,
        frames_per_generate: t.frames_per_generate,
        avg_ms: t.ms_per_frame(),
        fps: t.frames_per_second(),
        vram_gb: 0.0,
        gpu: prepared.reply.gpu.clone(),
        device: prepared.reply.device().name().to_owned(),
        cpu: prepared.reply.cpu.clone(),
        stages: t.per_frame.into_iter().chain(t.other).collect(),
        width: portrait.width(),
        height: portrait.height(),
    })
}

/// One JPEG frame of the default portrait mid-speech (the animation chooses which).
pub fn test_frame(
    prepared: &Prepared,
) -> Result<TestFrameReply, Box<dyn std::error::Error + Send + Sync>> {
    let portrait = prepared.default_portrait();
    let rgb = prepared.animation().test_frame(
        &prepared.context(),
        portrait,
        prepared.renderer(portrait, 2),
    )?;
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&rgb)?;
    Ok(TestFrameReply {
        jpeg,
        width: rgb.width(),
        height: rgb.height(),
    })
}
