//! MuseTalk 1.5 packs from the models' own code: `scripts/packs/musetalk.py --size small` builds the reduced-size
//! configuration of the upstream classes (diffusers' UNet2DConditionModel and AutoencoderKL, transformers'
//! Whisper encoder; random weights), checks every ONNX file against PyTorch, and the worker loads both of its
//! packs (fp32 and fp16) through `Prepare` unchanged and renders them. Random weights: plumbing and speed only.
//!
//! The worker's crop box, face tensor and paste-back are also compared with the exporter's numpy reference
//! (`scripts/packs/musetalk_pack/reference.py`) on the pack's own crop and paste settings.
//!
//! Needs `.venv-musetalk` (made by scripts/test.sh from scripts/packs/requirements-musetalk.txt;
//! `LIPCAST_MUSETALK_PYTHON` overrides). `LIPCAST_SKIP_MUSETALK=1` skips these tests, saying so; nothing else does.

mod model_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lipcast_worker::animation::Animator;
use lipcast_worker::model::ModelPack;

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

#[test]
fn musetalk_small_pack_exports_checks_and_renders_in_the_worker() {
    let Some(python) = model_support::exporter_python() else {
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

    let prepared = model_support::prepare_pack(&dir.join("fp32"));
    assert_eq!(prepared.reply.audio_feature, "audio_onnx");
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
    let spoken = model_support::render_frame(&mut a, &speech, 3);
    let per_frame = t.elapsed().as_secs_f64() * 1e3 / 4.0;
    let quiet = model_support::render_frame(&mut a, &silence, 3);
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
    let fp16 = model_support::prepare_pack(&dir.join("fp16"));
    let mut b = model_support::animator_of(&fp16, &portrait, 5);
    let spoken16 = model_support::render_frame(&mut b, &speech, 3);
    assert_eq!(
        (spoken16.width, spoken16.height),
        (spoken.width, spoken.height)
    );

    // The worker's crop box, face tensor (what prepare.onnx gets: channels 3-5) and lower-half blend against
    // the exporter's numpy reference (RGB, [-1, 1], lower_half).
    let work = std::env::temp_dir().join(format!("lipcast-musetalk-ref-{}", std::process::id()));
    let r = model_support::reference::compare(&python, &dir.join("fp32"), &portrait, &work);
    model_support::reference::report("musetalk", &r);
    assert_eq!(
        r.worker_box,
        a.crop(),
        "the animator's box is CropBox::around's"
    );
    model_support::reference::assert_close(&r);
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
