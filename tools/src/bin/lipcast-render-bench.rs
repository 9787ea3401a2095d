//! `lipcast-render-bench`: the render pipeline's figures per stage, outside the server (`scripts/bench.sh`'s
//! "stages" section runs it pinned to one core).

use anyhow::Context;
use clap::Parser;
use lipcast_proto::AudioFrontend;
use lipcast_worker::audio::{FrontendKind, synth};
use lipcast_worker::control::bench::benchmark;
use lipcast_worker::control::prepared::Prepared;
use tracing_subscriber::EnvFilter;

/// The same figures as the server's `/benchmark`, from the command line (e.g. pinned to one core with
/// `taskset`): the pack's real feature and render path on synthetic speech, per stage, as one JSON object.
/// Optionally writes rendered frames for other publishers to replay.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about)]
struct BenchArgs {
    /// Frames to time.
    #[arg(long, default_value_t = 500)]
    iterations: u32,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Audio front end (network or dsp; default: the pack's).
    #[arg(long)]
    frontend: Option<FrontendKind>,
    /// Model pack folder (default: the built-in pack), e.g. a generator pack.
    #[arg(long)]
    pack: Option<std::path::PathBuf>,
    /// Also write this many rendered I420 frames of synthetic speech, back to back, to this file (with a JSON
    /// sidecar `<file>.json` giving width, height and fps).
    #[arg(long)]
    dump_frames: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 250)]
    dump_count: u32,
}

fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
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
