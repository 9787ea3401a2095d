//! `scripts/packs/export_wav2lip.py` run for real: a random-weight checkpoint of the Wav2Lip generator, saved as
//! the published checkpoints are, is exported from a stand-in checkout (`tests/fixtures/wav2lip/checkout`:
//! lipcast's own code of the published architecture with the published tensor names), and the worker loads the
//! pack through `Prepare` and renders it. Random weights: plumbing and speed only, never lip-sync quality.
//!
//! Needs `.venv-musetalk` (the exporters' venv, made by scripts/test.sh); `LIPCAST_SKIP_MUSETALK=1` skips
//! this test, saying so.

mod model_support;

use std::path::Path;
use std::time::Instant;

use lipcast_worker::animation::Animator;
use lipcast_worker::model::ModelPack;
use lipcast_worker::model::pack::{AudioFeature, ChannelOrder};

const FIXTURE: &str = "worker/tests/fixtures/wav2lip";

/// Every file in the pack folder is one the manifest lists (so the worker's sha256 checks cover all of it).
fn assert_only_listed_files(pack: &Path, listed: &[String]) {
    let mut present: Vec<String> = std::fs::read_dir(pack)
        .expect("pack folder")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != "manifest.toml")
        .collect();
    present.sort();
    let mut listed = listed.to_vec();
    listed.sort();
    assert_eq!(
        present, listed,
        "files in the pack vs files in its manifest"
    );
}

#[test]
fn wav2lip_checkpoint_exports_from_a_checkout_and_renders_in_the_worker() {
    let Some(python) = model_support::exporter_python() else {
        return;
    };
    let work = std::env::temp_dir().join(format!("lipcast-wav2lip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let path = |name: &str| work.join(name).display().to_string();

    // A checkpoint as Wav2Lip's training script saves one: DataParallel's `module.` prefixes, the pre-1.6
    // format, the optimizer's state beside the weights.
    let t = Instant::now();
    let out = model_support::run_python(
        &python,
        &format!("{FIXTURE}/make_checkpoint.py"),
        &[&path("wav2lip.pth"), "--module-prefix", "--legacy-format"],
    );
    println!("{}", out.trim());
    println!("MEASURED checkpoint: {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let checkout = model_support::models_dir().join(format!("../{FIXTURE}/checkout"));
    let out = model_support::run_python(
        &python,
        "scripts/packs/export_wav2lip.py",
        &[
            "--wav2lip-repo",
            &checkout.display().to_string(),
            "--checkpoint",
            &path("wav2lip.pth"),
            "--out",
            &path("pack"),
            "--batch",
            "4",
            "--threads",
            "2",
            "--report",
            &path("report.json"),
        ],
    );
    println!("{}", out.trim());
    println!(
        "MEASURED export_wav2lip.py: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("report.json")).unwrap()).unwrap();
    // The published generator's 36.3 M parameters (batch norm scales and shifts included).
    assert_eq!(report["params"], 36_298_035);
    let threshold = report["threshold"].as_f64().unwrap();
    assert_eq!(threshold, 1e-3);
    for b in ["1", "4"] {
        let d = report["max_diff_vs_torch"][b].as_f64().unwrap();
        assert!(d < threshold, "batch {b}: ONNX Runtime vs PyTorch {d}");
    }
    assert_eq!(out.matches("max abs difference").count(), 2, "{out}");

    // The pack verifies, lists every file it has, and declares Wav2Lip's contract.
    let pack_dir = work.join("pack");
    let pack = ModelPack::load(&pack_dir).expect("the exported pack loads");
    let listed: Vec<String> = pack.manifest.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(listed, ["generate.onnx"]);
    assert_only_listed_files(&pack_dir, &listed);
    let g = pack.manifest.generator.clone().unwrap();
    assert_eq!((g.face_size, g.batch_size, g.audio_window), (96, 4, 16));
    assert_eq!(g.channel_order, ChannelOrder::Bgr);
    assert_eq!(g.audio_feature, AudioFeature::Mel80Wav2lip);

    let prepared = model_support::prepare_pack(&pack_dir);
    assert_eq!(prepared.reply.audio_feature, "mel80_wav2lip");
    let portrait = prepared.default_portrait().clone();
    let mut a = model_support::animator_of(&prepared, &portrait, 5);
    assert_eq!(a.frames_per_generate(), 4);
    assert!(
        (a.lookahead_ms() - 292.5).abs() < 0.01,
        "{}",
        a.lookahead_ms()
    );

    // Frame 3, the last of the first batch of 4, from speech and from silence.
    let speech = lipcast_worker::audio::synth::syllables(1.0, 3);
    let silence = vec![0.0f32; speech.len()];
    let idle = a.idle_frame(3).clone();
    let t = Instant::now();
    let spoken = model_support::render_frame(&mut a, &speech, 3);
    let first_batch_ms = t.elapsed().as_secs_f64() * 1e3;
    let (generated, _) = a.generate_figures();
    // The generation thread renders whole batches, at most two ahead of the loop (frame 3 was the first
    // batch's last frame, so the second batch may have followed).
    assert!(
        generated == 4 || generated == 8,
        "{generated} frames generated, not whole batches of 4"
    );
    let quiet = model_support::render_frame(&mut a, &silence, 3);
    let (generated, ms) = a.generate_figures();
    println!(
        "MEASURED first batch of 4 in the worker (2 threads): {first_batch_ms:.0} ms; generate.onnx {ms:.0} ms \
         per frame over {generated} frames"
    );
    let model_support::BoxDiff {
        changed,
        upper_changed,
        differs,
        area,
    } = model_support::box_diff(&spoken, &idle, &quiet, a.crop());
    println!(
        "wav2lip: {changed} of {area} box pixels generated ({upper_changed} in the upper half), {differs} differ \
         speech vs silence"
    );
    // region = "full": the crop covers the whole box, the upper half too; nothing outside it (box_diff).
    assert!(changed > area / 2, "only {changed} pixels changed");
    assert!(upper_changed > area / 5, "{upper_changed}");
    assert!(
        differs > area / 20,
        "speech and silence gave nearly the same face ({differs} pixels)"
    );

    // The worker's crop box, face tensor and blend against the exporters' numpy reference (BGR, [0, 1], full).
    let r = model_support::reference::compare(&python, &pack_dir, &portrait, &work.join("ref"));
    model_support::reference::report("wav2lip", &r);
    assert_eq!(
        r.worker_box,
        a.crop(),
        "the animator's box is CropBox::around's"
    );
    model_support::reference::assert_close(&r);

    std::fs::remove_dir_all(&work).unwrap();
}
