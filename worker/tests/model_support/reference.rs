//! The generator path's crop box, face tensor and paste-back against the exporter's independent numpy reference
//! (`scripts/packs/musetalk_pack/reference.py`), on the same inputs: the working image and mesh points of a
//! prepared portrait, the pack's manifest, and a synthetic generated crop.

use std::path::Path;

use lipcast_worker::avatar::{Frame, PreparedPortrait};
use lipcast_worker::generator::crop::{CropBox, Paster, Pixels, face_input};
use lipcast_worker::model::pack::GeneratorSpec;

/// What was compared, for the test to print and assert.
pub struct ReferenceDiff {
    pub worker_box: CropBox,
    pub reference_box: CropBox,
    /// |worker - reference| over the `[6, S, S]` face tensor, in tensor units.
    pub face_max: f64,
    pub face_mean: f64,
    /// |worker - reference| over the blended image's RGB bytes, grey levels.
    pub blend_max: u8,
    pub blend_differing: usize,
    /// Bytes the paste changed (in either), to show the comparison covers the blend.
    pub blend_changed: usize,
}

/// A generated crop `[3, S, S]` with smooth and sharp structure that also goes 10% past both ends of the value
/// range (so clamping is compared too).
fn synthetic_crop(s: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; 3 * s * s];
    for c in 0..3 {
        for y in 0..s {
            for x in 0..s {
                let u = (x as f32 / s as f32 * (3.0 + c as f32) + y as f32 * 0.37).sin();
                let checker = if (x / 3 + y / 5) % 2 == 0 {
                    0.25
                } else {
                    -0.25
                };
                let t = (0.5 + 0.45 * u + checker).clamp(-0.1, 1.1);
                out[c * s * s + y * s + x] = lo + (hi - lo) * t;
            }
        }
    }
    out
}

fn write_f32(path: &Path, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn read_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Runs the reference on `portrait` with the generator spec of the pack in `pack_dir` and the worker's own
/// functions on the same inputs (the ones `GeneratorAnimator::new` calls), in `work` (created, then removed).
pub fn compare(
    python: &Path,
    pack_dir: &Path,
    portrait: &PreparedPortrait,
    work: &Path,
) -> ReferenceDiff {
    let spec: GeneratorSpec = lipcast_worker::model::ModelPack::load(pack_dir)
        .expect("the pack loads")
        .manifest
        .generator
        .expect("a generator pack");
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("reference work dir");
    let s = spec.face_size as usize;
    let px = Pixels {
        order: spec.channel_order,
        lo: spec.value_range[0],
        hi: spec.value_range[1],
    };
    let image = &portrait.image;
    image
        .save(work.join("image.png"))
        .expect("writing image.png");
    let points: Vec<f32> = portrait.landmarks.iter().flatten().copied().collect();
    write_f32(&work.join("points.f32"), &points);
    let generated = synthetic_crop(s, px.lo, px.hi);
    write_f32(&work.join("generated.f32"), &generated);
    let out = work.join("reference");
    let arg = |name: &str| work.join(name).display().to_string();
    let stdout = super::run_python(
        python,
        "scripts/packs/musetalk_pack/reference.py",
        &[
            "--manifest",
            &pack_dir.join("manifest.toml").display().to_string(),
            "--image",
            &arg("image.png"),
            "--points",
            &arg("points.f32"),
            "--generated",
            &arg("generated.f32"),
            "--out",
            &out.display().to_string(),
        ],
    );
    println!("{}", stdout.trim());

    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("box.json")).expect("box.json"))
            .expect("box.json parses");
    let int = |k: &str| b[k].as_i64().unwrap_or_else(|| panic!("box.json {k}"));
    let reference_box = CropBox {
        x0: int("x0") as i32,
        y0: int("y0") as i32,
        side: int("side") as u32,
    };
    let worker_box = CropBox::around(&portrait.landmarks, &spec.crop).expect("a crop box");

    // The face tensor on the reference's box, so that a box difference does not hide a tensor difference.
    let face = face_input(image, &reference_box, s, &px);
    let want = read_f32(&out.join("face.f32"));
    assert_eq!(face.len(), want.len(), "face tensor size");
    let d: Vec<f64> = face
        .iter()
        .zip(&want)
        .map(|(a, b)| f64::from((a - b).abs()))
        .collect();
    let face_max = d.iter().copied().fold(0.0, f64::max);
    let face_mean = d.iter().sum::<f64>() / d.len() as f64;

    let mut frame = Frame {
        width: image.width(),
        height: image.height(),
        rgba: image
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
    };
    Paster::new(reference_box, s, px, &spec.paste).paste(&generated, &mut frame);
    let want = std::fs::read(out.join("blended.rgb")).expect("blended.rgb");
    let got: Vec<u8> = frame
        .rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    assert_eq!(got.len(), want.len(), "blended image size");
    let original = image.as_raw();
    let mut diff = ReferenceDiff {
        worker_box,
        reference_box,
        face_max,
        face_mean,
        blend_max: 0,
        blend_differing: 0,
        blend_changed: 0,
    };
    for ((g, w), o) in got.iter().zip(&want).zip(original) {
        let e = g.abs_diff(*w);
        diff.blend_max = diff.blend_max.max(e);
        diff.blend_differing += usize::from(e > 0);
        diff.blend_changed += usize::from(g != o || w != o);
    }
    std::fs::remove_dir_all(work).expect("removing the reference work dir");
    diff
}

pub fn report(name: &str, r: &ReferenceDiff) {
    println!(
        "MEASURED {name} reference: box worker {:?} reference {:?}; face tensor max diff {:.2e}, mean {:.2e}; \
         blend max {} grey level(s), {} of {} changed bytes differ",
        r.worker_box,
        r.reference_box,
        r.face_max,
        r.face_mean,
        r.blend_max,
        r.blend_differing,
        r.blend_changed
    );
}

/// The tolerances: the box is integers (exact); the face tensor is a bilinear mix of bytes computed in f32 here
/// and f64 there, whose error is a few f32 ulps of 255 (~1e-4 grey levels) plus the f32 rounding of the sample
/// positions (~1e-4 px at ~500 px, times at most 255 grey levels per px): < 1e-4 in tensor units, about 1/80 of
/// a grey level at most. The blend rounds to bytes, so that tiny error flips a value lying within it of a
/// half: at most 1 grey level, on a rare byte (< 0.5% of the changed ones).
pub fn assert_close(r: &ReferenceDiff) {
    assert_eq!(r.worker_box, r.reference_box, "crop box");
    assert!(r.face_max < 1e-4, "face tensor max diff {}", r.face_max);
    assert!(
        r.blend_changed > 1000,
        "the paste changed only {} bytes",
        r.blend_changed
    );
    assert!(r.blend_max <= 1, "blend max diff {}", r.blend_max);
    assert!(
        r.blend_differing * 200 < r.blend_changed,
        "{} of {} blended bytes differ",
        r.blend_differing,
        r.blend_changed
    );
}
