//! `Benchmark` and `TestFrame`: the real feature and render path on synthetic speech (no LiveKit).

use std::time::{Duration, Instant};

use lipcast_proto::{BenchmarkReply, StageTime, TestFrameReply};

use super::prepared::{LoadError, Prepared};
use crate::audio::{SAMPLES_PER_FRAME, synth};
use crate::session::animator::Animator;

/// Upper bound on iterations, so one request cannot hold a worker for minutes.
pub const MAX_ITERATIONS: u32 = 2_000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times `iterations` frames: audio features and mouth parameters, rendering, and the I420 conversion the
/// published track needs.
pub fn benchmark(prepared: &Prepared, iterations: u32) -> Result<BenchmarkReply, LoadError> {
    if prepared.is_generator() {
        return generator_benchmark(prepared, iterations);
    }
    let n = iterations.clamp(1, MAX_ITERATIONS) as usize;
    let portrait = prepared.default_portrait();
    let mut animator = prepared.warp_animator(portrait, 1)?;
    let speech = synth::syllables((n as f32 + 2.0) / prepared.fps() as f32, 1);
    let (mut features, mut render, mut convert) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut i420 = Vec::new();
    let mut fed = 0usize;
    for i in 0..n {
        let t = Instant::now();
        // Feed one frame of audio (plus the look-ahead on the first), then take one frame's parameters.
        let want = ((i + 2) * SAMPLES_PER_FRAME).min(speech.len());
        if want > fed {
            animator.push_audio(&speech[fed..want]);
            fed = want;
        }
        let params = animator.next_params();
        features += t.elapsed();
        let t = Instant::now();
        let frame = animator.render(&params, i as u64);
        render += t.elapsed();
        let t = Instant::now();
        frame.to_i420(&mut i420);
        convert += t.elapsed();
    }
    let per = |d: Duration| ms(d) / n as f64;
    let avg = per(features + render + convert);
    let (width, height) = (portrait.width(), portrait.height());
    Ok(BenchmarkReply {
        iterations: n as u32,
        frames_per_generate: 1,
        avg_ms: avg,
        fps: if avg > 0.0 { 1000.0 / avg } else { 0.0 },
        vram_gb: 0.0,
        gpu: prepared.reply.gpu.clone(),
        device: prepared.reply.device.clone(),
        cpu: prepared.reply.cpu.clone(),
        stages: vec![
            StageTime {
                name: "features".into(),
                avg_ms: per(features),
            },
            StageTime {
                name: "render".into(),
                avg_ms: per(render),
            },
            StageTime {
                name: "i420".into(),
                avg_ms: per(convert),
            },
        ],
        width,
        height,
    })
}

/// A generator pack: the real path, timed per stage on `iterations` frames of synthetic speech (rounded up to
/// whole batches): the audio feature, the model calls (one per batch of `batch_size` frames), the paste-back
/// onto the idle frame, and the I420 conversion. Stage times are per frame.
fn generator_benchmark(prepared: &Prepared, iterations: u32) -> Result<BenchmarkReply, LoadError> {
    use crate::generator::animator::portrait_inputs;
    use crate::generator::crop::{CropBox, Paster, Pixels, face_input};
    let Some(spec) = prepared.generator_spec() else {
        return Err(LoadError::NotGenerator(
            prepared.pack().manifest.name.clone(),
        ));
    };
    let Some(model) = prepared.generate_model() else {
        return Err(LoadError::NotGenerator(
            prepared.pack().manifest.name.clone(),
        ));
    };
    let batch = spec.batch_size as usize;
    let n = (iterations.clamp(1, MAX_ITERATIONS) as usize).div_ceil(batch) * batch;
    let fps = prepared.fps();
    let portrait = prepared.default_portrait();
    let s = spec.face_size as usize;
    let w = spec.audio_window as usize;
    let px = Pixels {
        order: spec.channel_order,
        lo: spec.value_range[0],
        hi: spec.value_range[1],
    };
    let crop = CropBox::around(&portrait.landmarks, &spec.crop)
        .ok_or(crate::generator::animator::AnimatorError::NoCrop)?;
    let face = face_input(&portrait.image, &crop, s, &px);
    let sources = model.lock().unwrap_or_else(|p| p.into_inner()).sources();
    let prepare_model = prepared.prepare_model();
    let constant = portrait_inputs(&sources, prepare_model.as_deref(), face, s)?;
    // The portrait was prepared at warm-up (cached since): report that call's time.
    let prepare_ms = prepare_model
        .as_ref()
        .map_or(0.0, |p| p.lock().unwrap_or_else(|e| e.into_inner()).run_ms);
    let paster = Paster::new(crop, s, px, &spec.paste);
    let mut renderer = crate::avatar::Renderer::new(
        portrait,
        crate::avatar::render::RenderOptions {
            seed: 1,
            fps,
            idle_motion: true,
        },
    );
    let speech = synth::syllables((n as f32 + 2.0) / fps as f32, 1);
    let t = Instant::now();
    let mut feature = prepared.new_feature()?;
    feature.push(&speech)?;
    feature.finish()?;
    let features = t.elapsed();
    let (mut generate, mut paste, mut convert) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
    let wl = model.window_len();
    let mut audio_in = vec![0.0f32; batch * wl];
    let mut frame = None;
    let mut i420 = Vec::new();
    for first in (0..n).step_by(batch) {
        let t = Instant::now();
        audio_in.resize(batch * wl, 0.0);
        for k in 0..batch {
            feature.window(
                first + k,
                fps,
                spec.audio_offset,
                w,
                &mut audio_in[k * wl..(k + 1) * wl],
            );
        }
        let out = model.run(batch, &mut audio_in, &constant)?;
        generate += t.elapsed();
        for (k, crop) in out.chunks_exact(3 * s * s).enumerate() {
            let t = Instant::now();
            let base = renderer.render(&crate::audio::MouthParams::REST, (first + k) as u64);
            let f = frame.get_or_insert_with(|| base.clone());
            f.rgba.copy_from_slice(&base.rgba);
            paster.paste(crop, f);
            paste += t.elapsed();
            let t = Instant::now();
            f.to_i420(&mut i420);
            convert += t.elapsed();
        }
    }
    let per = |d: Duration| ms(d) / n as f64;
    let avg = per(features + generate + paste + convert);
    Ok(BenchmarkReply {
        iterations: n as u32,
        frames_per_generate: batch as u32,
        avg_ms: avg,
        fps: if avg > 0.0 { 1000.0 / avg } else { 0.0 },
        vram_gb: 0.0,
        gpu: prepared.reply.gpu.clone(),
        device: prepared.reply.device.clone(),
        cpu: prepared.reply.cpu.clone(),
        stages: vec![
            StageTime {
                name: "features".into(),
                avg_ms: per(features),
            },
            StageTime {
                name: "generate".into(),
                avg_ms: per(generate),
            },
            StageTime {
                name: "paste".into(),
                avg_ms: per(paste),
            },
            StageTime {
                name: "i420".into(),
                avg_ms: per(convert),
            },
            StageTime {
                // Once per portrait, not per frame: the last prepare.onnx call (0 without one).
                name: "prepare_once".into(),
                avg_ms: prepare_ms,
            },
            StageTime {
                name: "lookahead".into(),
                avg_ms: f64::from(crate::generator::animator::lookahead_ms(spec, fps)),
            },
        ],
        width: portrait.width(),
        height: portrait.height(),
    })
}

/// One JPEG frame of the default portrait mid-speech: the most open mouth of the first second of synthetic
/// speech.
pub fn test_frame(
    prepared: &Prepared,
) -> Result<TestFrameReply, Box<dyn std::error::Error + Send + Sync>> {
    let portrait = prepared.default_portrait();
    if prepared.is_generator() {
        // A generator pack: its frame 12 of the same speech, generated (not a fallback).
        let mut animator = prepared.generator_animator(portrait, 2)?;
        animator.push_audio(&synth::syllables(1.0, 2));
        animator.end_of_audio();
        let mut frame = None;
        for i in 0..13u64 {
            if !animator.wait_generated(Duration::from_secs(30)) {
                return Err(animator
                    .failure()
                    .unwrap_or_else(|| "the generator timed out".into())
                    .into());
            }
            frame = Some(animator.speech_frame(i).to_rgb_image());
        }
        let rgb = frame.unwrap_or_else(|| image::RgbImage::new(2, 2));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&rgb)?;
        return Ok(TestFrameReply {
            jpeg,
            width: rgb.width(),
            height: rgb.height(),
        });
    }
    let mut animator = prepared.warp_animator(portrait, 2)?;
    animator.push_audio(&synth::syllables(1.0, 2));
    animator.end_of_audio();
    let mut best = (f32::MIN, 0u64, crate::audio::MouthParams::REST);
    let mut i = 0u64;
    while animator.ready() > 0 && i < 25 {
        let p = animator.next_params();
        if p.opening() > best.0 {
            best = (p.opening(), i, p);
        }
        i += 1;
    }
    let frame = animator.render(&best.2, best.1);
    let rgb = frame.to_rgb_image();
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
    #[arg(long, default_value = "")]
    pub frontend: String,
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
        device: "cpu".into(),
        intra_threads: args.threads,
        audio_frontend: args.frontend.clone(),
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
    if let Some(path) = args
        .dump_frames
        .as_ref()
        .filter(|_| !prepared.is_generator())
    {
        let portrait = prepared.default_portrait();
        let mut animator = prepared.warp_animator(portrait, 3)?;
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
            "audio_frontend": prepared.reply.audio_frontend, "threads": args.threads,
            "pack": prepared.reply.pack_name, "frames_per_generate": r.frames_per_generate,
        })
    );
    Ok(())
}
