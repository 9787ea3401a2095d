//! MuseTalk 1.5 packs from the models' own code: `scripts/packs/musetalk.py --size small` builds the reduced-size
//! configuration of the upstream classes (diffusers' UNet2DConditionModel and AutoencoderKL, transformers'
//! Whisper encoder; random weights), checks every ONNX file against PyTorch, and the worker loads both of its
//! packs (fp32 and fp16) through `Prepare` unchanged and renders them. Random weights: plumbing and speed only.
//!
//! Needs `.venv-musetalk` (made by scripts/test.sh from scripts/packs/requirements-musetalk.txt;
//! `LIPCAST_MUSETALK_PYTHON` overrides). `LIPCAST_SKIP_MUSETALK=1` skips these tests, saying so; nothing else does.

mod model_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lipcast_proto::PrepareRequest;
use lipcast_worker::animation::Animator;
use lipcast_worker::control::prepared::Prepared;
use lipcast_worker::generator::GeneratorAnimator;
use lipcast_worker::model::ModelPack;

/// The exporter's python, or None when the tests are explicitly opted out.
fn exporter_python() -> Option<PathBuf> {
    if std::env::var_os("LIPCAST_SKIP_MUSETALK").is_some_and(|v| v == "1") {
        println!("SKIPPED: LIPCAST_SKIP_MUSETALK=1 (the MuseTalk exporter's venv is not used)");
        return None;
    }
    let p = std::env::var_os("LIPCAST_MUSETALK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| model_support::models_dir().join("../.venv-musetalk/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv-musetalk from \
         scripts/packs/requirements-musetalk.txt), or set LIPCAST_SKIP_MUSETALK=1 to skip these tests",
        p.display()
    );
    Some(p)
}

/// Runs the exporter (batch 4, `args`) into a fresh folder; returns it and the exporter's report.
fn export(python: &Path, name: &str, args: &[&str]) -> (PathBuf, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("lipcast-musetalk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = Instant::now();
    let out = Command::new(python)
        .arg(model_support::models_dir().join("../scripts/packs/musetalk.py"))
        .arg(&dir)
        .args(["--batch", "4", "--threads", "2"])
        .args(args)
        .output()
        .expect("running scripts/packs/musetalk.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "musetalk.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", stdout.trim());
    println!(
        "MEASURED musetalk.py {}: {:.1} s",
        args.join(" "),
        start.elapsed().as_secs_f64()
    );
    let report = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    (
        dir,
        serde_json::from_str(&report).expect("report.json parses"),
    )
}

fn prepare(dir: &Path) -> Prepared {
    Prepared::load(&PrepareRequest {
        device: "cpu".into(),
        intra_threads: 2,
        pack_dir: dir.display().to_string(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{} loads through Prepare: {e}", dir.display()))
}

/// Frame `last` of a segment's first batch (generated in one call, so no frame of it is skipped however slow
/// the machine), rendered from `pcm`.
fn render(a: &mut GeneratorAnimator, pcm: &[f32], last: u64) -> lipcast_worker::avatar::Frame {
    a.reset();
    a.push_audio(pcm);
    a.end_of_audio();
    let mut f = None;
    for i in 0..=last {
        assert!(
            a.wait_generated(Duration::from_secs(120)),
            "{:?}",
            a.failure()
        );
        f = Some(a.speech_frame(i).clone());
    }
    f.unwrap()
}

#[test]
fn musetalk_small_pack_exports_checks_and_renders_in_the_worker() {
    let Some(python) = exporter_python() else {
        return;
    };
    let layout =
        std::env::temp_dir().join(format!("lipcast-musetalk-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&layout);
    let layout_s = layout.display().to_string();
    let (dir, report) = export(
        &python,
        "small",
        &["--size", "small", "--save-layout", &layout_s],
    );
    // The exporter's own checks passed (it exits non-zero otherwise); their figures are in the report.
    let fp32 = &report["variants"]["fp32"];
    for role in ["audio", "prepare", "generate"] {
        let d = fp32[role]["max_diff_vs_torch"].as_f64().unwrap();
        assert!(d < 1e-2, "{role}: {d}");
        assert!(fp32[role]["flops_per_run_b1"].as_f64().unwrap() > 0.0);
        assert_eq!(fp32[role]["uncounted_nodes"], 0, "{role}");
    }
    assert!(report["logmel_vs_feature_extractor"].as_f64().unwrap() < 1e-3);

    let first_shas: Vec<String> = ModelPack::load(&dir.join("fp32"))
        .unwrap()
        .manifest
        .files
        .iter()
        .map(|f| f.sha256.clone())
        .collect();
    // The packs verify (sha256 of every file) and declare what the worker expects.
    for variant in ["fp32", "fp16"] {
        let pack = ModelPack::load(&dir.join(variant)).unwrap();
        let g = pack.manifest.generator.clone().unwrap();
        assert_eq!((g.face_size, g.audio_window, g.audio_offset), (256, 10, -4));
        let a = g.audio_onnx.unwrap();
        assert_eq!((a.rate, a.chunk_ms, a.context_ms), (50, 200, 200));
    }

    let prepared = prepare(&dir.join("fp32"));
    assert_eq!(prepared.reply.audio_frontend, "audio_onnx");
    let prep = model_support::generator_of(&prepared)
        .prepare_model()
        .expect("a prepare.onnx");
    assert_eq!(prep.lock().unwrap().calls, 1, "the warm-up prepared once");
    let portrait = prepared.default_portrait().clone();
    let mut a = model_support::animator_of(&prepared, &portrait, 5);
    assert_eq!(prep.lock().unwrap().calls, 1, "cached per portrait");
    assert_eq!(a.frames_per_generate(), 4);
    // Window end 2 i + 6 feature frames, rounded up to a 200 ms chunk, plus 200 ms of context: worst 440 ms
    // past a frame's end (frame 3), plus 3 frames for the batch.
    assert!(
        (a.lookahead_ms() - 560.0).abs() < 0.01,
        "{}",
        a.lookahead_ms()
    );

    // Frame 3 (the last of the first batch) of speech and of silence: the whisper features reach the face.
    let speech = lipcast_worker::audio::synth::syllables(1.0, 3);
    let silence = vec![0.0f32; speech.len()];
    let idle = a.idle_frame(3).clone();
    let t = Instant::now();
    let spoken = render(&mut a, &speech, 3);
    let per_frame = t.elapsed().as_secs_f64() * 1e3 / 4.0;
    let quiet = render(&mut a, &silence, 3);
    let (calls, ms) = a.generate_figures();
    println!(
        "MEASURED small pack in the worker (2 threads): {per_frame:.0} ms per frame end to end, \
         generate.onnx {calls} calls {ms:.1} ms mean"
    );
    // region = "lower_half": the box's upper half stays the portrait's.
    let model_support::BoxDiff {
        changed,
        upper_changed,
        differs,
        area,
    } = model_support::box_diff(&spoken, &idle, &quiet, a.crop());
    println!(
        "musetalk small: {changed} of {area} box pixels generated ({upper_changed} in the upper half), \
         {differs} differ speech vs silence"
    );
    assert_eq!(upper_changed, 0, "lower_half paste touched the upper half");
    assert!(changed > area / 5, "only {changed} pixels changed");
    assert!(
        differs > area / 20,
        "speech and silence gave nearly the same face ({differs} pixels)"
    );

    // The fp16 pack loads in the worker too and renders (on this CPU ONNX Runtime runs its float16 graph).
    let fp16 = prepare(&dir.join("fp16"));
    let mut b = model_support::animator_of(&fp16, &portrait, 5);
    let spoken16 = render(&mut b, &speech, 3);
    assert_eq!(
        (spoken16.width, spoken16.height),
        (spoken.width, spoken.height)
    );
    std::fs::remove_dir_all(dir).unwrap();

    // The real-weights path: the same random networks saved in the authors' layout (musetalkV15/musetalk.json +
    // unet.pth, sd-vae/, whisper/) and exported from there with --weights give byte-identical files.
    let (again, _) = export(&python, "weights", &["--weights", &layout_s, "--no-fp16"]);
    let shas = |d: &Path| {
        let m = ModelPack::load(&d.join("fp32")).unwrap().manifest;
        m.files.iter().map(|f| f.sha256.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        shas(&again),
        first_shas,
        "--weights reproduces the random pack"
    );
    std::fs::remove_dir_all(again).unwrap();
    std::fs::remove_dir_all(layout).unwrap();
}
