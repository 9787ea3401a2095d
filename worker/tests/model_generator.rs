//! Generator packs (the plug-in contract): manifest validation, `mel80_wav2lip` against its reference
//! computation, and a small random-weight Wav2Lip-architecture replica (built by `scripts/packs/make_replica.py`
//! at width 0.25: same interface, fewer channels) loaded through the same path as the built-in pack and driven
//! through `GeneratorAnimator` (batches, look-ahead, late frames, paste-back), and a MuseTalk-shaped replica
//! (`--arch musetalk`: `audio.onnx` chunked features equal to whole-signal ones, `prepare.onnx` run once per
//! portrait and fed to every call, audio reaching the output). Random weights test plumbing only.

mod model_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lipcast_proto::PrepareRequest;
use lipcast_worker::audio::mel80::Mel80;
use lipcast_worker::control::prepared::Prepared;
use std::sync::{Arc, Mutex};

use lipcast_worker::animation::Animator;
use lipcast_worker::generator::AudioModel;
use lipcast_worker::generator::animator::lookahead_ms;
use lipcast_worker::generator::feature::{Feature, OnnxFeature};
use lipcast_worker::model::pack::GeneratorSpec;
use lipcast_worker::model::{Device, ModelPack, PackError, Runtime, RuntimeConfig};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lipcast-gen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn python() -> PathBuf {
    let p = std::env::var_os("LIPCAST_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| model_support::models_dir().join("../.venv-test/bin/python"));
    assert!(
        p.exists(),
        "test venv python {} is missing: run scripts/test.sh (it installs onnx from tests/room/requirements.txt)",
        p.display()
    );
    p
}

/// A small replica pack (width 0.25, batch `batch`) in a fresh folder.
fn small_replica(name: &str, batch: u32) -> PathBuf {
    replica(name, "wav2lip", batch)
}

/// A small replica pack of `arch` (`wav2lip` or `musetalk`; width 0.25, batch `batch`) in a fresh folder.
fn replica(name: &str, arch: &str, batch: u32) -> PathBuf {
    let dir = temp_dir(name);
    let out = Command::new(python())
        .arg(model_support::models_dir().join("../scripts/packs/make_replica.py"))
        .arg(&dir)
        .args([
            "--width",
            "0.25",
            "--batch",
            &batch.to_string(),
            "--arch",
            arch,
        ])
        .output()
        .expect("running make_replica.py");
    assert!(
        out.status.success(),
        "make_replica.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn prepare(dir: &Path) -> Result<Prepared, String> {
    Prepared::load(&PrepareRequest {
        device: lipcast_proto::Device::Cpu.into(),
        intra_threads: 2,
        pack_dir: dir.display().to_string(),
        ..Default::default()
    })
    .map_err(|e| e.to_string())
}

/// A generator manifest around a dummy generate file (manifest checks come before any ONNX session).
fn manifest_dir(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::write(dir.join("generate.onnx"), b"not onnx").unwrap();
    let sha = lipcast_worker::model::pack::sha256_file(&dir.join("generate.onnx")).unwrap();
    let text = format!(
        r#"name = "t"
version = "0"
fps = 25
renderer = "generator"
[output]
max_long_side = 512
[generator]
face_size = 96
channel_order = "bgr"
value_range = [0.0, 1.0]
face_input = "masked_and_reference"
audio_feature = "mel80_wav2lip"
audio_window = 16
batch_size = 4
[generator.crop]
scale = 1.0
[generator.paste]
feather = 0.1
region = "full"
[[files]]
role = "generate"
path = "generate.onnx"
sha256 = "{sha}"
inputs = [{{ name = "mel", shape = [-1, 1, 80, 16] }}, {{ name = "face", shape = [-1, 6, 96, 96] }}]
outputs = [{{ name = "out", shape = [-1, 3, 96, 96] }}]
"#
    );
    std::fs::write(dir.join("manifest.toml"), edit(text)).unwrap();
    dir
}

/// A change to the valid manifest's text.
type Edit = fn(String) -> String;

fn without_generator_table(t: String) -> String {
    let (head, rest) = t.split_once("[generator]").unwrap();
    let files = rest.split_once("[[files]]").unwrap().1;
    format!("{head}[[files]]{files}")
}

#[test]
fn generator_manifests_are_checked() {
    let ok = manifest_dir("ok", |t| t);
    let pack = ModelPack::load(&ok).expect("a valid generator manifest");
    let g = pack.manifest.generator.as_ref().unwrap();
    assert_eq!((g.face_size, g.batch_size, g.audio_window), (96, 4, 16));
    std::fs::remove_dir_all(ok).unwrap();

    let cases: [(&str, Edit, &str); 13] = [
        (
            "no-table",
            without_generator_table,
            "needs a [generator] table",
        ),
        (
            "warp-with-table",
            |t| t.replace("renderer = \"generator\"", "renderer = \"warp\""),
            "needs renderer = \"generator\"",
        ),
        (
            "renderer",
            |t| t.replace("renderer = \"generator\"", "renderer = \"gan\""),
            "unknown variant `gan`, expected `warp` or `generator`",
        ),
        (
            "unknown-key",
            |t| t.replace("batch_size = 4", "batch_size = 4\nbatch = 2"),
            "unknown field `batch`",
        ),
        (
            "feature",
            |t| t.replace("\"mel80_wav2lip\"", "\"whisper_tiny\""),
            "unknown variant `whisper_tiny`, expected `mel80_wav2lip` or `audio_onnx`",
        ),
        (
            "window",
            |t| t.replace("audio_window = 16", "audio_window = 12"),
            "needs [B,1,80,12]",
        ),
        (
            "batch-dim",
            |t| t.replace("[-1, 6, 96, 96]", "[8, 6, 96, 96]"),
            "B = -1 or 4",
        ),
        (
            "order",
            |t| t.replace("\"bgr\"", "\"bgra\""),
            "unknown variant `bgra`",
        ),
        (
            "frontend",
            |t| {
                t.replace(
                    "renderer = \"generator\"",
                    "renderer = \"generator\"\nfrontend = \"dsp\"",
                )
            },
            "frontend applies to warp packs only",
        ),
        (
            "prepare-shape",
            |t| {
                t + "[[files]]\nrole = \"prepare\"\npath = \"generate.onnx\"\nsha256 = \""
                    + &"0".repeat(64)
                    + "\"\ninputs = [{ name = \"face\", shape = [1, 3, 64, 64] }]\noutputs = [{ name = \"l\", shape = [1, 8, 4, 4] }]\n"
            },
            "needs [1,3,96,96] (the crop) or [1,6,96,96]",
        ),
        (
            "audio-onnx-without-file",
            |t| {
                t.replace("\"mel80_wav2lip\"", "\"audio_onnx\"").replace(
                    "[generator.crop]",
                    "[generator.audio_onnx]\nrate = 50\nchunk_ms = 100\n[generator.crop]",
                )
            },
            "needs a [[files]] entry with role \"audio\"",
        ),
        (
            "audio-onnx-rate",
            |t| {
                t.replace("\"mel80_wav2lip\"", "\"audio_onnx\"").replace(
                    "[generator.crop]",
                    "[generator.audio_onnx]\nrate = 48\nchunk_ms = 100\n[generator.crop]",
                ) + "[[files]]\nrole = \"audio\"\npath = \"generate.onnx\"\nsha256 = \""
                    + &"0".repeat(64)
                    + "\"\n"
            },
            "must divide 16000",
        ),
        (
            "mel80-with-audio-table",
            |t| {
                t.replace(
                    "[generator.crop]",
                    "[generator.audio_onnx]\nrate = 50\nchunk_ms = 100\n[generator.crop]",
                )
            },
            "takes no \"audio\" file",
        ),
    ];
    for (name, edit, phrase) in cases {
        let dir = manifest_dir(name, edit);
        let err = ModelPack::load(&dir).expect_err(name);
        eprintln!("{name}: {err}");
        assert!(matches!(err, PackError::Manifest { .. }), "{name}: {err}");
        assert!(err.to_string().contains(phrase), "{name}: {err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[derive(serde::Deserialize)]
struct Reference {
    pcm_i16: Vec<i16>,
    pcm_scale: f32,
    mel: Vec<Vec<f32>>,
}

#[test]
fn mel80_matches_the_reference_computation() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mel80/reference.json");
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pcm: Vec<f32> = r
        .pcm_i16
        .iter()
        .map(|&s| f32::from(s) / r.pcm_scale)
        .collect();
    let mut mel = Mel80::new();
    // Streamed in uneven chunks, as the session pushes it.
    for chunk in pcm.chunks(517) {
        mel.push(chunk);
    }
    mel.finish();
    assert_eq!(mel.frames().len(), r.mel.len(), "1 + n / 200 frames");
    let mut worst = 0f32;
    for (a, b) in mel.frames().iter().zip(&r.mel) {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    println!(
        "mel80_wav2lip: max |rust - reference| = {worst:.2e} over {} frames",
        r.mel.len()
    );
    assert!(worst < 1e-4, "max difference {worst}");
    // Not trivially silent: the fixture exercises the whole range.
    let max = r.mel.iter().flatten().fold(f32::MIN, |m, v| m.max(*v));
    assert!(max > 0.0);
}

#[test]
fn replica_pack_renders_batches_ahead_and_counts_late_frames() {
    let dir = small_replica("anim", 4);
    let prepared = prepare(&dir).expect("the replica pack loads through Prepare");
    assert!(prepared.animation().as_generator().is_some());
    assert_eq!(prepared.reply.audio_feature, "mel80_wav2lip");
    let portrait = prepared.default_portrait().clone();
    let mut a = model_support::animator_of(&prepared, &portrait, 5);
    assert_eq!(a.frames_per_generate(), 4);
    assert!((a.lookahead_ms() - 292.5).abs() < 0.01);

    // Audio streamed at frame pace: nothing is ready before a full batch's windows are there.
    let speech = lipcast_worker::audio::synth::syllables(2.0, 3);
    a.push_audio(&speech[..640 * 4]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a.ready(),
        0,
        "4 frames of audio do not complete a batch of 16-frame windows"
    );
    assert!(
        a.waits_for_model(),
        "the segment's start waits for the model"
    );
    a.push_audio(&speech[640 * 4..]);
    a.end_of_audio();
    assert!(
        a.wait_generated(Duration::from_secs(30)),
        "{:?}",
        a.failure()
    );
    let idle = a.idle_frame(0).clone();
    let crop = a.crop();
    let first = a.speech_frame(0).clone();
    // The generated crop changes the face inside the box, nothing outside it.
    let (w, h) = (first.width as i32, first.height as i32);
    let mut inside = 0u64;
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 4) as usize;
            let same = first.rgba[i..i + 4] == idle.rgba[i..i + 4];
            let in_box = x >= crop.x0
                && x < crop.x0 + crop.side as i32
                && y >= crop.y0
                && y < crop.y0 + crop.side as i32;
            if !in_box {
                assert!(same, "pixel ({x},{y}) outside the crop box changed");
            } else if !same {
                inside += 1;
            }
        }
    }
    assert!(
        inside > u64::from(crop.side * crop.side) / 4,
        "only {inside} pixels in the box changed"
    );

    // Frames taken faster than the model renders fall back and are counted; the frame count never drifts.
    let total = speech.len().div_ceil(640);
    let mut shown = 1;
    while a.ready() > 0 {
        a.speech_frame(shown as u64);
        shown += 1;
    }
    assert_eq!(shown, total, "every frame of the segment shown once");
    let (generated, per_frame) = a.generate_figures();
    println!(
        "small replica: {generated} generated, {} late of {total}, {per_frame:.2} ms/frame in the model",
        a.late_frames()
    );
    assert!(
        a.late_frames() > 0,
        "frames taken back to back must outrun the model"
    );
    assert!(a.late_frames() < total as u64);

    // Paced like the real-time loop (a frame every 40 ms), a new segment renders every frame in time.
    a.reset();
    let late_before = a.late_frames();
    let speech = lipcast_worker::audio::synth::syllables(1.5, 4);
    a.push_audio(&speech);
    a.end_of_audio();
    assert!(a.wait_generated(Duration::from_secs(30)));
    let start = Instant::now();
    let mut k = 0u64;
    while a.ready() > 0 {
        std::thread::sleep(
            (start + Duration::from_millis(40) * k as u32)
                .saturating_duration_since(Instant::now()),
        );
        a.speech_frame(1000 + k);
        k += 1;
    }
    assert_eq!(k as usize, speech.len().div_ceil(640));
    let late = a.late_frames() - late_before;
    println!("small replica paced at 25 fps: {late} late of {k}");
    assert!(
        late <= k / 5,
        "{late} late frames of {k} at 25 fps with a ~6 ms/frame model"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tensor_names_are_checked_against_the_onnx_file() {
    let dir = small_replica("names", 2);
    let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    std::fs::write(
        dir.join("manifest.toml"),
        manifest.replace("name = \"audio_sequences\"", "name = \"mel\""),
    )
    .unwrap();
    let err = prepare(&dir).err().expect("a wrong input name is refused");
    eprintln!("{err}");
    assert!(
        err.contains("\"mel\"") && err.contains("audio_sequences"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The MuseTalk-shaped replica's `[generator]` and its `audio.onnx`, loaded apart from `Prepared`.
fn audio_model(dir: &Path) -> (GeneratorSpec, Arc<Mutex<AudioModel>>) {
    let pack = ModelPack::load(dir).unwrap();
    let spec = pack.manifest.generator.clone().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        device: Device::Cpu,
        intra_threads: 1,
    })
    .unwrap();
    let model = AudioModel::load(&runtime, &pack, &spec).unwrap();
    (spec, Arc::new(Mutex::new(model)))
}

#[test]
fn audio_onnx_features_are_chunked_exactly() {
    let dir = replica("mt-audio", "musetalk", 4);
    let (spec, model) = audio_model(&dir);
    let a = spec.audio_onnx.unwrap();
    assert_eq!(
        (a.rate, a.chunk_ms, a.context_ms, a.hop()),
        (50, 100, 120, 320)
    );
    let c = model.lock().unwrap().channels;
    assert_eq!(c, 1920);
    // 1.37 s of speech (not a whole number of chunks), streamed in uneven pieces.
    let speech = lipcast_worker::audio::synth::syllables(1.37, 7);
    let mut f = Feature::Onnx(OnnxFeature::new(model.clone(), a));
    let mut feature = Feature::Onnx(OnnxFeature::new(model.clone(), a));
    for piece in speech.chunks(777) {
        feature.push(piece).unwrap();
    }
    // Before the end: only frames whose chunk and right context have arrived.
    let Feature::Onnx(g) = &feature else {
        unreachable!()
    };
    let full_chunks = (speech.len() - a.context_samples()) / a.chunk_samples();
    assert_eq!(g.frames(), full_chunks * a.chunk_samples() / a.hop());
    feature.finish().unwrap();
    let Feature::Onnx(g) = &feature else {
        unreachable!()
    };
    let t = speech.len().div_ceil(a.hop());
    assert_eq!(g.frames(), t, "one feature frame per 320 samples");
    // Reference: the whole segment in one call, with the same zero context before it and zeros after.
    let ctx = a.context_samples();
    let mut whole = vec![0.0f32; ctx];
    whole.extend_from_slice(&speech);
    whole.resize((ctx + t * a.hop() + ctx).div_ceil(a.hop()) * a.hop(), 0.0);
    let reference = model.lock().unwrap().run(&whole).unwrap();
    let first = ctx / a.hop();
    let reference = &reference[first * c..(first + t) * c];
    let worst = g
        .features()
        .iter()
        .zip(reference)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("audio.onnx chunked vs whole: max diff {worst:.2e} (max |feature| {scale:.2})");
    assert!(scale > 0.1, "features are not all zero");
    assert!(worst <= 1e-4 * scale.max(1.0), "max difference {worst}");
    // Windows: 10 frames from 2 i - 4, zeros before the segment's start (as MuseTalk pads).
    let mut w = vec![1.0f32; 10 * c];
    feature.window(0, 25, -4, 10, &mut w);
    assert!(w[..4 * c].iter().all(|&v| v == 0.0));
    assert_eq!(&w[4 * c..10 * c], &g.features()[..6 * c]);
    feature.window(3, 25, -4, 10, &mut w);
    assert_eq!(&w[..], &g.features()[2 * c..12 * c]);
    // A fresh feature with the whole segment at once gives the same.
    f.push(&speech).unwrap();
    f.finish().unwrap();
    let Feature::Onnx(f) = &f else { unreachable!() };
    assert_eq!(f.features(), g.features());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn musetalk_shaped_pack_prepares_once_and_audio_reaches_the_output() {
    let dir = replica("mt-anim", "musetalk", 4);
    let prepared = prepare(&dir).expect("the MuseTalk-shaped pack loads through Prepare");
    let generator = model_support::generator_of(&prepared);
    assert_eq!(prepared.reply.audio_feature, "audio_onnx");
    let prep = generator.prepare_model().expect("a prepare.onnx");
    // The warm-up rendered the default portrait: prepared once, and cached for every later animator.
    assert_eq!(prep.lock().unwrap().calls, 1);
    let portrait = prepared.default_portrait().clone();
    let mut a = model_support::animator_of(&prepared, &portrait, 5);
    let _b = model_support::animator_of(&prepared, &portrait, 6);
    assert_eq!(
        prep.lock().unwrap().calls,
        1,
        "prepare.onnx runs once per portrait"
    );
    assert_eq!(a.frames_per_generate(), 4);
    // Window end 2 i + 6 feature frames, rounded up to a 100 ms chunk, plus 120 ms of context: worst 280 ms
    // past a frame's end (frame 0), plus 3 frames for the batch.
    assert!(
        (a.lookahead_ms() - 400.0).abs() < 0.01,
        "{}",
        a.lookahead_ms()
    );
    let spec = generator.spec().clone();
    let mut b1 = spec.clone();
    b1.batch_size = 1;
    assert!((lookahead_ms(&b1, 25) - 280.0).abs() < 0.01);

    // Frame 3 (the last of the first batch, which is generated in one call: no frame of it can be skipped by
    // a loaded machine) of speech and of silence: the audio features reach the generated face.
    let frame3 = |a: &mut lipcast_worker::generator::GeneratorAnimator, pcm: &[f32]| {
        a.reset();
        a.push_audio(pcm);
        a.end_of_audio();
        let mut f = None;
        for i in 0..4u64 {
            assert!(
                a.wait_generated(Duration::from_secs(60)),
                "{:?}",
                a.failure()
            );
            f = Some(a.speech_frame(i).clone());
        }
        f.unwrap()
    };
    let speech = lipcast_worker::audio::synth::syllables(1.0, 3);
    let silence = vec![0.0f32; speech.len()];
    let idle = a.idle_frame(3).clone();
    let spoken = frame3(&mut a, &speech);
    let quiet = frame3(&mut a, &silence);
    assert_eq!(a.late_frames(), 0, "frames waited for");
    let model_support::BoxDiff {
        changed,
        differs,
        area,
        ..
    } = model_support::box_diff(&spoken, &idle, &quiet, a.crop());
    println!(
        "musetalk-shaped: {changed} of {area} box pixels generated, {differs} differ speech vs silence"
    );
    assert!(
        changed > area / 4,
        "only {changed} pixels in the box changed"
    );
    assert!(
        differs > area / 20,
        "speech and silence gave nearly the same face ({differs} pixels)"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
