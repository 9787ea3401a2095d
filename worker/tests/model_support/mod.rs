//! Helpers shared by the model/avatar/audio tests. These tests use the real ONNX Runtime library and the real
//! built-in pack; when set-up is incomplete they fail with a message saying what to run.
#![allow(dead_code)]

pub mod reference;

use std::{path::PathBuf, process::Command};

use lipcast_worker::{
    audio::resample::Resampler,
    avatar::{FaceModels, PrepareOptions, PreparedPortrait},
    model::{ModelPack, Runtime, RuntimeConfig},
};

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

pub fn runtime(config: RuntimeConfig) -> Runtime {
    assert!(
        lipcast_worker::vendor::onnxruntime().is_some(),
        "ONNX Runtime library missing: run scripts/setup.sh (or set ORT_DYLIB_PATH)"
    );
    Runtime::new(config).expect("ONNX Runtime must load")
}

pub fn cpu_runtime() -> Runtime {
    runtime(RuntimeConfig {
        device: lipcast_worker::model::Device::Cpu,
        intra_threads: 1,
    })
}

pub fn builtin_pack() -> ModelPack {
    ModelPack::load(&models_dir().join("builtin")).expect("built-in pack must verify")
}

pub fn face_models() -> FaceModels {
    FaceModels::load(&cpu_runtime(), &builtin_pack()).expect("face models load")
}

pub fn default_portrait_bytes() -> Vec<u8> {
    std::fs::read(models_dir().join("portraits/default.jpg")).expect("models/portraits/default.jpg")
}

pub fn prepared_default() -> PreparedPortrait {
    face_models()
        .prepare(&default_portrait_bytes(), &PrepareOptions::default())
        .expect("face on the default portrait")
}

/// Speech from espeak-ng as 16 kHz mono f32. Panics (the test fails) if espeak-ng is not installed.
pub fn espeak(text: &str, voice: &str) -> Vec<f32> {
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "--stdout", text])
        .output()
        .expect("espeak-ng must be installed (apt-get install -y espeak-ng); scripts/test.sh installs it");
    assert!(
        out.status.success(),
        "espeak-ng failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rate, channels, samples) = parse_wav(&out.stdout);
    let mut r = Resampler::new(rate, channels);
    let mut pcm = Vec::new();
    r.push_i16(&samples, &mut pcm);
    r.finish(&mut pcm);
    pcm
}

/// Minimal RIFF/WAVE (PCM 16-bit) parser; espeak-ng writes a streaming header with bogus sizes, so data runs to
/// the end of the buffer.
pub fn parse_wav(b: &[u8]) -> (u32, u32, Vec<i16>) {
    assert!(
        b.len() > 44 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "not a WAV file"
    );
    let mut i = 12;
    let (mut rate, mut channels) = (0u32, 0u32);
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let size = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        if id == b"fmt " {
            channels = u16::from_le_bytes([b[i + 10], b[i + 11]]) as u32;
            rate = u32::from_le_bytes([b[i + 12], b[i + 13], b[i + 14], b[i + 15]]);
        } else if id == b"data" {
            let data = &b[i + 8..];
            let samples = data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate, channels, samples);
        }
        i += 8 + size;
    }
    panic!("WAV without data chunk");
}

/// The generator a generator pack's `Prepare` loaded (a panic for any other pack).
pub fn generator_of(
    prepared: &lipcast_worker::control::prepared::Prepared,
) -> &lipcast_worker::animation::Generator {
    prepared
        .animation()
        .as_generator()
        .expect("a generator pack animates with its generator")
}

/// A generator animator of `portrait`, as a session gets one (the pack's renderer, seeded with `seed`).
pub fn animator_of(
    prepared: &lipcast_worker::control::prepared::Prepared,
    portrait: &lipcast_worker::avatar::PreparedPortrait,
    seed: u64,
) -> lipcast_worker::generator::GeneratorAnimator {
    generator_of(prepared)
        .generator_animator(portrait, prepared.renderer(portrait, seed), prepared.fps())
        .expect("a generator animator")
}

/// Pixels of a speech frame inside a generator's crop box: changed against the idle frame (`changed`; in the
/// box's upper half: `upper_changed`) and different from the silent frame (`differs`), out of `area`. Asserts
/// that every pixel outside the box is the idle frame's: the paste touches nothing else.
pub struct BoxDiff {
    pub changed: u64,
    pub upper_changed: u64,
    pub differs: u64,
    pub area: u64,
}

pub fn box_diff(
    spoken: &lipcast_worker::avatar::Frame,
    idle: &lipcast_worker::avatar::Frame,
    quiet: &lipcast_worker::avatar::Frame,
    crop: lipcast_worker::generator::crop::CropBox,
) -> BoxDiff {
    let (w, h) = (spoken.width as i32, spoken.height as i32);
    let side = crop.side as i32;
    let mut d = BoxDiff {
        changed: 0,
        upper_changed: 0,
        differs: 0,
        area: u64::from(crop.side * crop.side),
    };
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 4) as usize;
            let in_box = x >= crop.x0 && x < crop.x0 + side && y >= crop.y0 && y < crop.y0 + side;
            if !in_box {
                assert_eq!(spoken.rgba[i..i + 4], idle.rgba[i..i + 4], "({x},{y})");
                continue;
            }
            let c = u64::from(spoken.rgba[i..i + 3] != idle.rgba[i..i + 3]);
            d.changed += c;
            if y < crop.y0 + side / 2 {
                d.upper_changed += c;
            }
            d.differs += u64::from(spoken.rgba[i..i + 3] != quiet.rgba[i..i + 3]);
        }
    }
    d
}

/// The exporters' python (`.venv-musetalk`, made by scripts/test.sh from scripts/packs/requirements-musetalk.txt;
/// `LIPCAST_MUSETALK_PYTHON` overrides), or None when the tests that need it are explicitly opted out with
/// `LIPCAST_SKIP_MUSETALK=1` (they then print SKIPPED); nothing else skips them.
pub fn exporter_python() -> Option<PathBuf> {
    if std::env::var_os("LIPCAST_SKIP_MUSETALK").is_some_and(|v| v == "1") {
        println!("SKIPPED: LIPCAST_SKIP_MUSETALK=1 (the exporters' venv is not used)");
        return None;
    }
    let p = std::env::var_os("LIPCAST_MUSETALK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| models_dir().join("../.venv-musetalk/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv-musetalk from \
         scripts/packs/requirements-musetalk.txt), or set LIPCAST_SKIP_MUSETALK=1 to skip these tests",
        p.display()
    );
    Some(p)
}

/// Runs `python script args`, failing the test with both outputs when it fails; returns stdout.
pub fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(models_dir().join("..").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A generator pack loaded the way a worker loads it (sha256s, sessions, the warm-up render), 2 threads.
pub fn prepare_pack(dir: &std::path::Path) -> lipcast_worker::control::prepared::Prepared {
    lipcast_worker::control::prepared::Prepared::load(&lipcast_proto::PrepareRequest {
        device: lipcast_proto::Device::Cpu.into(),
        intra_threads: 2,
        pack_dir: dir.display().to_string(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{} loads through Prepare: {e}", dir.display()))
}

/// Frame `last` of a segment's first batch (generated in one call, so no frame of it is skipped however slow
/// the machine), rendered from `pcm`.
pub fn render_frame(
    a: &mut lipcast_worker::generator::GeneratorAnimator,
    pcm: &[f32],
    last: u64,
) -> lipcast_worker::avatar::Frame {
    use lipcast_worker::animation::Animator;
    a.reset();
    a.push_audio(pcm);
    a.end_of_audio();
    let mut f = None;
    for i in 0..=last {
        assert!(
            a.wait_generated(std::time::Duration::from_secs(120)),
            "{:?}",
            a.failure()
        );
        f = Some(a.speech_frame(i).clone());
    }
    f.expect("frame 0..=last rendered")
}
