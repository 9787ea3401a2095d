//! The network audio front end with the real ONNX Runtime and the built-in pack: features and outputs agree with
//! the training script, the lips close on the held-out "my mom made a big apple pie", silence rests the mouth.
//!
//! Fixtures (`tests/fixtures/mouth`, written by `scripts/mouth/train.py`): the Python log-mel of held-out clip 00
//! (little-endian f32, [frames, 40]) and the JAX model's outputs for each of its video frames.

mod model_support;

use std::path::PathBuf;

use lipcast_tools::eval;
use lipcast_worker::{
    audio::{
        FrontendKind, MouthFrontend, MouthParams, NetworkFrontend, build_frontend,
        network::{CTX_PAST, LogMel, NMEL, WINDOW, floor_frame},
    },
    model::{FileRole, ModelPack},
};
use ndarray::Array3;
use ort::value::TensorRef;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mouth")
}

struct Fixture {
    wav: PathBuf,
    logmel: Vec<[f32; NMEL]>,
    jax: Vec<[f32; 4]>,
}

fn fixture() -> Fixture {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("clip00_jax.json")).expect("fixture json"),
    )
    .expect("fixture json parses");
    let bytes = std::fs::read(fixture_dir().join("clip00_logmel.f32")).expect("fixture features");
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        values.len(),
        meta["n_mel_frames"].as_u64().unwrap() as usize * NMEL
    );
    let logmel = values
        .chunks_exact(NMEL)
        .map(|c| c.try_into().unwrap())
        .collect();
    let jax = meta["jax_outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            [0, 1, 2, 3].map(|i| r[i].as_f64().unwrap() as f32)
        })
        .collect();
    Fixture {
        wav: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(meta["wav"].as_str().unwrap()),
        logmel,
        jax,
    }
}

fn heldout() -> Vec<eval::Clip> {
    eval::load_heldout(&model_support::models_dir().join("eval/mouth-heldout"))
        .expect("held-out set in models/eval/mouth-heldout")
}

fn network(gate: bool) -> NetworkFrontend {
    NetworkFrontend::load(
        &model_support::cpu_runtime(),
        &model_support::builtin_pack(),
    )
    .expect("network front end loads from the built-in pack")
    .with_gate(gate)
}

#[test]
fn rust_features_match_the_training_script() {
    let fx = fixture();
    let pcm = eval::read_wav_16k(&fx.wav).expect("fixture clip");
    let ours = LogMel::new().clip(&pcm);
    assert_eq!(ours.len(), fx.logmel.len(), "same number of mel frames");
    let mut worst = (0.0f32, 0, 0);
    for (j, (a, b)) in ours.iter().zip(&fx.logmel).enumerate() {
        for i in 0..NMEL {
            let d = (a[i] - b[i]).abs();
            if d > worst.0 {
                worst = (d, j, i);
            }
        }
    }
    eprintln!(
        "max |rust - python| log-mel: {:.2e} (frame {}, band {})",
        worst.0, worst.1, worst.2
    );
    assert!(
        worst.0 < 2e-3,
        "log-mel differs by {} at frame {} band {}",
        worst.0,
        worst.1,
        worst.2
    );
}

#[test]
fn onnx_matches_the_training_framework() {
    let fx = fixture();
    let pack = model_support::builtin_pack();
    let mut loaded = model_support::cpu_runtime()
        .load(&pack.path(FileRole::Mouth).unwrap())
        .expect("mouth network loads");
    // The same windows the training script built: mel frames 4k-12 .. 4k+7, the floor before the clip.
    let k = fx.jax.len();
    let floor = floor_frame();
    let x = Array3::from_shape_fn((k, WINDOW, NMEL), |(f, t, b)| {
        match (4 * f + t).checked_sub(CTX_PAST) {
            Some(j) => fx.logmel[j][b],
            None => floor[b],
        }
    });
    let out = loaded
        .session
        .run(ort::inputs!["mel" => TensorRef::from_array_view(x.view()).unwrap()])
        .expect("inference");
    let (shape, y) = out["mouth"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(shape.to_vec(), vec![k as i64, 4]);
    let worst = y
        .chunks_exact(4)
        .zip(&fx.jax)
        .flat_map(|(a, b)| (0..4).map(move |i| (a[i] - b[i]).abs()))
        .fold(0.0f32, f32::max);
    eprintln!("max |onnx - jax| over {k} frames: {worst:.2e}");
    assert!(worst < 1e-4, "ONNX and JAX disagree by {worst}");
    // The streaming front end (no gate) on the WAV gives the same frames, up to the feature rounding.
    let pcm = eval::read_wav_16k(&fx.wav).unwrap();
    let stream = eval::run_frontend(&mut network(false), &pcm);
    assert_eq!(stream.len(), k);
    let worst = stream
        .iter()
        .zip(&fx.jax)
        .map(|(p, j)| {
            [p.jaw_open, p.width, p.round, p.closure]
                .iter()
                .zip(j)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        })
        .fold(0.0f32, f32::max);
    eprintln!("max |streaming - jax|: {worst:.2e}");
    assert!(worst < 5e-3, "streaming front end differs by {worst}");
}

#[test]
fn lips_close_on_my_mom_made_a_big_apple_pie() {
    let clips = heldout();
    let clip = clips
        .iter()
        .find(|c| {
            c.text
                .to_lowercase()
                .starts_with("my mom made a big apple pie")
        })
        .expect("the held-out clip");
    let out = eval::run_frontend(&mut network(true), &clip.pcm);
    let line: String = out
        .iter()
        .map(|p| match p.opening() {
            o if o <= eval::CLOSED_OPENING => '_',
            o if o < 0.3 => '.',
            o if o < 0.6 => 'o',
            _ => 'O',
        })
        .collect();
    eprintln!("opening per frame: {line}");
    let windows = eval::bilabial_windows(clip);
    assert!(
        windows.len() >= 7,
        "m, m, m, m, b, p, p expected: {windows:?}"
    );
    for (phone, start, a, b) in &windows {
        let closed = out[*a..=*b]
            .iter()
            .any(|p| p.closure >= 0.7 || eval::lips_closed(p));
        assert!(
            closed,
            "lips do not close within one frame of /{phone}/ at {start:.2}s (frames {a}..={b}): {:?}\n{line}",
            &out[*a..=*b]
        );
    }
    // And they open between: the vowels of "mom", "made", "big", "apple", "pie" are not all closed.
    let open = out.iter().filter(|p| p.opening() > 0.3).count();
    assert!(open >= 8, "mouth hardly opens: {line}");
}

#[test]
fn silence_keeps_the_mouth_at_rest() {
    for tone in eval::room_tone() {
        let gated = eval::run_frontend(&mut network(true), &tone);
        assert_eq!(gated.len(), tone.len().div_ceil(640));
        // Digital silence and the -68 dBFS floor are below the gate: rest, exactly.
        let level =
            10.0 * (tone.iter().map(|v| v * v).sum::<f32>() / tone.len() as f32 + 1e-12).log10();
        if level < -60.0 {
            assert!(
                gated.iter().all(|p| *p == MouthParams::REST),
                "level {level:.0} dBFS"
            );
        }
        // Without the gate the network itself keeps the lips shut on every frame.
        let raw = eval::run_frontend(&mut network(false), &tone);
        let worst = raw.iter().map(|p| p.opening()).fold(0.0f32, f32::max);
        eprintln!("room tone at {level:.0} dBFS: max opening without gate {worst:.3}");
        assert!(
            raw.iter().all(eval::lips_closed) && gated.iter().all(eval::lips_closed),
            "mouth opens on room tone at {level:.0} dBFS (max opening {worst})"
        );
    }
}

#[test]
fn frames_pop_after_the_lookahead_and_reset_starts_over() {
    let mut f = network(true);
    assert!((f.lookahead_ms() - 47.5).abs() < 1e-6);
    f.push(&vec![0.0; 640 + 760 - 1]);
    assert!(f.pop().is_none(), "frame 0 needs 760 samples past its end");
    f.push(&[0.0]);
    assert_eq!(f.pop(), Some(MouthParams::REST));
    assert_eq!(f.ready(), 0);
    f.push(&vec![0.0; 6400]);
    assert_eq!(std::iter::from_fn(|| f.pop()).count(), 10);
    // 7800 samples pushed = 12.2 frames: the 12th and the partial 13th come out on flush.
    f.flush();
    assert_eq!(f.ready(), 2);
    // After a reset the same audio gives the same frames.
    let clip = &heldout()[0];
    let a = eval::run_frontend(&mut f, &clip.pcm);
    let b = eval::run_frontend(&mut f, &clip.pcm);
    assert_eq!(a, b);
}

#[test]
fn factory_builds_both_and_names_a_missing_network() {
    let runtime = model_support::cpu_runtime();
    let pack = model_support::builtin_pack();
    // Without AUDIO_FRONTEND the pack's own choice holds.
    assert_eq!(FrontendKind::resolve(None, &pack), pack.manifest.frontend());
    assert_eq!(
        FrontendKind::resolve(Some(FrontendKind::Dsp), &pack),
        FrontendKind::Dsp
    );
    assert!("magic".parse::<FrontendKind>().is_err());
    for kind in [FrontendKind::Network, FrontendKind::Dsp] {
        let mut fe = build_frontend(kind, &runtime, &pack).expect("front end builds");
        fe.push(&vec![0.0; 16_000]);
        fe.flush();
        assert_eq!(std::iter::from_fn(|| fe.pop()).count(), 25, "{kind}");
    }
    // A pack without the mouth file: dsp still works, network says what is missing.
    let dir = std::env::temp_dir().join(format!("lipcast-nomouth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let from = model_support::models_dir().join("builtin");
    let manifest = std::fs::read_to_string(from.join("manifest.toml")).unwrap();
    // Drop the [[files]] table with role "mouth".
    let mut parts: Vec<&str> = manifest.split("\n[[files]]").collect();
    let before = parts.len();
    parts.retain(|p| !p.contains("role = \"mouth\""));
    assert_eq!(parts.len(), before - 1, "one mouth entry in the manifest");
    let stripped = parts
        .join("\n[[files]]")
        .replace("frontend = \"network\"", "frontend = \"dsp\"");
    std::fs::write(dir.join("manifest.toml"), stripped).unwrap();
    for f in ["face_detection_short_range.onnx", "face_landmark.onnx"] {
        std::fs::copy(from.join(f), dir.join(f)).unwrap();
    }
    let bare = ModelPack::load(&dir).expect("pack without the network verifies");
    assert_eq!(FrontendKind::resolve(None, &bare), FrontendKind::Dsp);
    assert!(build_frontend(FrontendKind::Dsp, &runtime, &bare).is_ok());
    let err = build_frontend(FrontendKind::Network, &runtime, &bare)
        .err()
        .expect("network without its file is an error");
    eprintln!("{err}");
    assert!(
        err.to_string().contains("mouth") && err.to_string().contains("AUDIO_FRONTEND=dsp"),
        "{err}"
    );
    // And a manifest asking for the network without providing it is refused when the pack loads.
    let asks = std::fs::read_to_string(dir.join("manifest.toml"))
        .unwrap()
        .replace("frontend = \"dsp\"", "frontend = \"network\"");
    std::fs::write(dir.join("manifest.toml"), asks).unwrap();
    let err = ModelPack::load(&dir).unwrap_err();
    assert!(err.to_string().contains("role \"mouth\""), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `/tmp/lipcast_mouth_sheet.png`: the held-out "my mom made a big apple pie" rendered frame by frame with
/// the network (upper block) and the DSP baseline (lower block), 10 frames (0.4 s) a row. The bar under each frame
/// is the phoneme-derived target: red = bilabial (lips must close), dark grey = silence, green = open (brighter =
/// wider).
#[test]
#[ignore = "writes a contact sheet to /tmp for a human to look at"]
fn contact_sheet() {
    use lipcast_worker::{
        audio::DspFrontend,
        avatar::{Renderer, render::RenderOptions},
    };
    let p = model_support::prepared_default();
    let clips = heldout();
    let clip = &clips[0];
    let runs = [
        ("network", eval::run_frontend(&mut network(true), &clip.pcm)),
        (
            "dsp",
            eval::run_frontend(&mut DspFrontend::new(), &clip.pcm),
        ),
    ];
    let fh = p.rig.face_height;
    let c = [
        (p.landmarks[13][0] + p.landmarks[14][0]) / 2.0,
        (p.landmarks[13][1] + p.landmarks[14][1]) / 2.0,
    ];
    let (cw, ch) = ((0.7 * fh) as u32, (0.45 * fh) as u32);
    let cx0 = (c[0] - cw as f32 / 2.0).max(0.0) as u32;
    let cy0 = (c[1] - 0.45 * ch as f32).max(0.0) as u32;
    let (tw, th, bar) = (2 * cw, 2 * ch, 8u32);
    let cols = 10u32;
    let n = clip.targets.len() as u32;
    let rows = n.div_ceil(cols);
    let block = rows * (th + bar) + 12;
    let mut sheet = image::RgbImage::from_pixel(cols * tw, 2 * block, image::Rgb([255, 255, 255]));
    for (b, (name, params)) in runs.iter().enumerate() {
        let mut r = Renderer::new(
            &p,
            RenderOptions {
                seed: 1,
                fps: 25,
                idle_motion: false,
            },
        );
        for (i, (q, t)) in params.iter().zip(&clip.targets).enumerate() {
            let f = r.render(q, i as u64).to_rgb_image();
            let crop = image::imageops::crop_imm(&f, cx0, cy0, cw, ch).to_image();
            let tile =
                image::imageops::resize(&crop, tw, th, image::imageops::FilterType::CatmullRom);
            let (x, y) = (
                (i as u32 % cols) * tw,
                b as u32 * block + (i as u32 / cols) * (th + bar),
            );
            image::imageops::overlay(&mut sheet, &tile, x as i64, y as i64);
            let colour = if t.closure >= 0.7 {
                image::Rgb([220, 30, 30])
            } else if t.opening() < 0.02 {
                image::Rgb([60, 60, 60])
            } else {
                image::Rgb([0, (80.0 + 175.0 * t.opening()) as u8, 0])
            };
            for yy in y + th + 1..y + th + bar - 1 {
                for xx in x + 1..x + tw - 1 {
                    sheet.put_pixel(xx, yy, colour);
                }
            }
        }
        println!("{name}: {} frames", params.len());
    }
    sheet.save("/tmp/lipcast_mouth_sheet.png").unwrap();
    println!(
        "wrote /tmp/lipcast_mouth_sheet.png ({n} frames, {cols} a row; upper block network, lower dsp)"
    );
}
