//! `Benchmark` and `TestFrame`: the real feature and render path on synthetic speech (no LiveKit).

use lipcast_proto::{AudioFrontend, BenchmarkReply, TestFrameReply};

use super::prepared::{LoadError, Prepared};
use crate::audio::{FrontendKind, synth};

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

/// `lipcast-worker bench`: the same figures as `/benchmark`, from the command line (e.g. pinned to one core
/// with `taskset`), optionally writing rendered frames for other publishers to replay.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Frames to time.
    #[arg(long, default_value_t = 500)]
    pub iterations: u32,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Audio front end (network or dsp; default: the pack's).
    #[arg(long)]
    pub frontend: Option<FrontendKind>,
    /// Model pack folder (default: the built-in pack), e.g. a generator pack.
    #[arg(long)]
    pub pack: Option<std::path::PathBuf>,
    /// Also write this many rendered I420 frames of synthetic speech, back to back, to this file (with a JSON
    /// sidecar `<file>.json` giving width, height and fps).
    #[arg(long)]
    pub dump_frames: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 250)]
    pub dump_count: u32,
}

/// Runs `lipcast-worker bench`; prints one JSON object.
pub fn run_cli(args: &BenchArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let prepared = Prepared::load(&lipcast_proto::PrepareRequest {
        device: lipcast_proto::Device::Cpu.into(),
        intra_threads: args.threads,
        audio_frontend: match args.frontend {
            None => AudioFrontend::Pack,
            Some(FrontendKind::Network) => AudioFrontend::Network,
            Some(FrontendKind::Dsp) => AudioFrontend::Dsp,
        }
        .into(),
        pack_dir: args
            .pack
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        ..Default::default()
    })
    .context("loading the model pack")?;
    let r = benchmark(&prepared, args.iterations)?;
    let stages: serde_json::Map<String, serde_json::Value> = r
        .stages
        .iter()
        .map(|s| (s.name.clone(), serde_json::json!(s.avg_ms)))
        .collect();
    // Frames to replay elsewhere: the built-in pack's (a generator's need its model thread to be waited for).
    if let Some(path) = args
        .dump_frames
        .as_ref()
        .filter(|_| prepared.animation().as_generator().is_none())
    {
        let portrait = prepared.default_portrait();
        let mut animator = prepared.animator(portrait, 3)?;
        let speech = synth::syllables(args.dump_count as f32 / prepared.fps() as f32 + 1.0, 3);
        animator.push_audio(&speech);
        animator.end_of_audio();
        let mut out = Vec::new();
        let mut i420 = Vec::new();
        for i in 0..u64::from(args.dump_count) {
            animator.speech_frame(i).to_i420(&mut i420);
            out.extend_from_slice(&i420);
        }
        std::fs::write(path, &out).with_context(|| format!("writing {}", path.display()))?;
        let meta = serde_json::json!({"width": portrait.width(), "height": portrait.height(), "fps": prepared.fps(), "frames": args.dump_count});
        std::fs::write(path.with_extension("json"), meta.to_string())?;
    }
    println!(
        "{}",
        serde_json::json!({
            "iterations": r.iterations, "avg_ms": r.avg_ms, "fps": r.fps, "stages_ms": stages,
            "device": r.device, "cpu": r.cpu, "width": r.width, "height": r.height,
            "audio_frontend": prepared.reply.audio_feature, "threads": args.threads,
            "pack": prepared.reply.pack_name, "frames_per_generate": r.frames_per_generate,
        })
    );
    Ok(())
}
