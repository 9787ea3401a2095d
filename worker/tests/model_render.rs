//! The renderer on the default portrait.

mod model_support;

use std::time::Instant;

use lipcast_worker::{
    audio::{DspFrontend, MouthFrontend, MouthParams},
    avatar::{Renderer, render::RenderOptions},
};

const OPEN: MouthParams = MouthParams {
    jaw_open: 1.0,
    width: 0.0,
    round: 0.0,
    closure: 0.0,
};
const STILL: RenderOptions = RenderOptions {
    seed: 7,
    fps: 25,
    idle_motion: false,
};

#[test]
fn rest_without_idle_motion_is_the_portrait() {
    let p = model_support::prepared_default();
    let mut r = Renderer::new(&p, STILL);
    let f = r.render(&MouthParams::REST, 0);
    let src: Vec<u8> = p
        .image
        .pixels()
        .flat_map(|q| [q[0], q[1], q[2], 255])
        .collect();
    assert!(f.rgba == src, "rest frame differs from the portrait");
}

#[test]
fn open_differs_from_closed_at_the_mouth_only() {
    let p = model_support::prepared_default();
    let mut r = Renderer::new(
        &p,
        RenderOptions {
            seed: 3,
            ..Default::default()
        },
    );
    let closed = r.render(&MouthParams::REST, 40).clone();
    let open = r.render(&OPEN, 40).clone();
    assert_eq!((open.width, open.height), (p.width(), p.height()));
    let w = p.width() as usize;
    let px = |f: &lipcast_worker::avatar::Frame, x: usize, y: usize| {
        f.rgba[(y * w + x) * 4..(y * w + x) * 4 + 3].to_vec()
    };
    // Around the mouth the frames differ a lot.
    let m = [
        (p.landmarks[13][0] + p.landmarks[14][0]) / 2.0,
        (p.landmarks[13][1] + p.landmarks[14][1]) / 2.0,
    ];
    let fh = p.rig.face_height;
    let mut changed = 0;
    let mut total = 0;
    for y in (m[1] - 0.05 * fh) as usize..(m[1] + 0.15 * fh) as usize {
        for x in (m[0] - 0.15 * fh) as usize..(m[0] + 0.15 * fh) as usize {
            total += 1;
            let (a, b) = (px(&closed, x, y), px(&open, x, y));
            if a.iter()
                .zip(&b)
                .map(|(u, v)| u.abs_diff(*v) as u32)
                .sum::<u32>()
                > 30
            {
                changed += 1;
            }
        }
    }
    eprintln!("mouth region: {changed} of {total} pixels changed");
    assert!(
        changed * 5 > total,
        "only {changed} of {total} pixels changed"
    );
    // Far from the face (outside the rig's region) the bytes are the portrait's, whatever the mouth and idle pose.
    let [x0, y0, x1, y1] = p.rig.roi;
    let src: Vec<u8> = p
        .image
        .pixels()
        .flat_map(|q| [q[0], q[1], q[2], 255])
        .collect();
    let mut outside = 0;
    for y in 0..p.height() as usize {
        for x in 0..w {
            if x < x0 || x >= x1 || y < y0 || y >= y1 {
                outside += 1;
                let i = (y * w + x) * 4;
                assert!(open.rgba[i..i + 4] == src[i..i + 4], "pixel {x},{y}");
                assert!(closed.rgba[i..i + 4] == src[i..i + 4], "pixel {x},{y}");
            }
        }
    }
    assert!(
        outside > (w * p.height() as usize) / 3,
        "the region of interest should not cover the whole portrait"
    );
}

#[test]
fn deterministic_for_a_seed_and_alive_when_idle() {
    let p = model_support::prepared_default();
    let params: Vec<MouthParams> = (0..150)
        .map(|i| MouthParams {
            jaw_open: ((i as f32) * 0.3).sin().abs(),
            width: 0.2,
            round: 0.1,
            closure: 0.0,
        })
        .collect();
    let render_all = |seed: u64| {
        let mut r = Renderer::new(
            &p,
            RenderOptions {
                seed,
                ..Default::default()
            },
        );
        params
            .iter()
            .enumerate()
            .map(|(i, q)| r.render(q, i as u64).rgba.clone())
            .collect::<Vec<_>>()
    };
    let a = render_all(11);
    assert!(a == render_all(11), "same seed, same bytes");
    // (Frames are not independent of their order any more: nods and brow raises follow the speech so far.)
    assert!(a != render_all(12), "another seed moves differently");
    // Idle: a silent avatar blinks within 10 s and its head moves, but its mouth stays shut.
    let mut r = Renderer::new(
        &p,
        RenderOptions {
            seed: 5,
            ..Default::default()
        },
    );
    let blinks = (0..250)
        .filter(|&i| r.idle_pose(&MouthParams::REST, i).blink > 0.9)
        .count();
    assert!(blinks >= 1, "no blink in 10 s");
    let f0 = r.render(&MouthParams::REST, 0).clone();
    let f60 = r.render(&MouthParams::REST, 60).clone();
    assert!(f0.rgba != f60.rgba, "idle head motion");
}

#[test]
fn i420_has_the_right_size() {
    let p = model_support::prepared_default();
    let mut r = Renderer::new(&p, STILL);
    let f = r.render(&OPEN, 0);
    let mut i420 = Vec::new();
    f.to_i420(&mut i420);
    assert_eq!(i420.len(), 512 * 512 * 3 / 2);
}

/// `cargo test --release -p lipcast-worker --test model_render -- --ignored --nocapture render_benchmark`
#[test]
#[ignore = "benchmark: run with --release --ignored"]
fn render_benchmark() {
    let p = model_support::prepared_default();
    let mut r = Renderer::new(&p, RenderOptions::default());
    let mut times = Vec::new();
    for i in 0..500u64 {
        let q = MouthParams {
            jaw_open: ((i as f32) * 0.37).sin().abs(),
            width: 0.3,
            round: 0.2,
            closure: 0.0,
        };
        let t = Instant::now();
        std::hint::black_box(r.render(&q, i));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let mut i420 = Vec::new();
    let t = Instant::now();
    for _ in 0..100 {
        r.render(&OPEN, 0).to_i420(&mut i420);
    }
    let with_i420 = t.elapsed().as_secs_f64() * 1e3 / 100.0;
    // A close-up: the face fills most of a 512x512 frame (worst case for the warp region).
    let side = (p.detection.w * 2.0) as u32;
    let (x0, y0) = (
        (p.detection.cx - side as f32 / 2.0).max(0.0) as u32,
        (p.detection.cy - side as f32 / 2.0).max(0.0) as u32,
    );
    let crop = image::imageops::crop_imm(&p.image, x0, y0, side, side).to_image();
    let close = image::imageops::resize(&crop, 512, 512, image::imageops::FilterType::CatmullRom);
    let cp = model_support::face_models()
        .prepare_image(close)
        .expect("face in the close-up");
    let mut cr = Renderer::new(&cp, RenderOptions::default());
    let mut ctimes = Vec::new();
    for i in 0..200u64 {
        let q = MouthParams {
            jaw_open: ((i as f32) * 0.37).sin().abs(),
            width: 0.3,
            round: 0.2,
            closure: 0.0,
        };
        let t = Instant::now();
        std::hint::black_box(cr.render(&q, i));
        ctimes.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ctimes.sort_by(f64::total_cmp);
    println!(
        "close-up 512x512 (warp region {}x{}): median {:.2} ms/frame, p90 {:.2}",
        cp.rig.roi[2] - cp.rig.roi[0],
        cp.rig.roi[3] - cp.rig.roi[1],
        ctimes[ctimes.len() / 2],
        ctimes[ctimes.len() * 9 / 10]
    );
    cr.render(&OPEN, 0)
        .to_rgb_image()
        .save("/tmp/lipcast_closeup_open.png")
        .unwrap();
    // DSP front end on 10 s of espeak speech.
    let speech = model_support::espeak(
        "The quick brown fox jumps over the lazy dog while we measure how fast the front end runs.",
        "en-us",
    );
    let mut fe = DspFrontend::new();
    let t = Instant::now();
    for chunk in speech.chunks(320) {
        fe.push(chunk);
        while fe.pop().is_some() {}
    }
    let frames = speech.len() as f64 / 640.0;
    println!(
        "dsp front end: {:.3} ms per 40 ms frame ({frames:.0} frames)",
        t.elapsed().as_secs_f64() * 1e3 / frames
    );
    let roi = p.rig.roi;
    println!(
        "render {}x{} (warp region {}x{}): median {:.2} ms/frame, p90 {:.2}, min {:.2}; render + I420 {:.2} ms",
        p.width(),
        p.height(),
        roi[2] - roi[0],
        roi[3] - roi[1],
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[0],
        with_i420
    );
}

/// Writes `/tmp/lipcast_contact_sheet.png`: a spoken sentence rendered frame by frame (crops around the face).
#[test]
#[ignore = "writes a contact sheet to /tmp for a human to look at"]
fn contact_sheet() {
    let p = model_support::prepared_default();
    let speech = model_support::espeak("Maybe we should open a window, please.", "en-us");
    let mut fe = DspFrontend::new();
    fe.push(&speech);
    fe.flush();
    let params: Vec<MouthParams> = std::iter::from_fn(|| fe.pop()).collect();
    let mut r = Renderer::new(
        &p,
        RenderOptions {
            seed: 1,
            ..Default::default()
        },
    );
    let fh = p.rig.face_height;
    let c = [
        (p.landmarks[13][0] + p.landmarks[14][0]) / 2.0,
        (p.landmarks[13][1] + p.landmarks[14][1]) / 2.0,
    ];
    // Crop: the lower two thirds of the face, shown at twice the size; 8 frames (0.32 s) a row.
    let (cw, ch) = ((1.0 * fh) as u32, (0.8 * fh) as u32);
    let cx0 = (c[0] - cw as f32 / 2.0).max(0.0) as u32;
    let cy0 = (c[1] - 0.45 * ch as f32).max(0.0) as u32;
    let (tw, th) = (2 * cw, 2 * ch);
    let cols = 8u32;
    let frames: Vec<image::RgbImage> = params
        .iter()
        .enumerate()
        .map(|(i, q)| {
            println!(
                "frame {i:3}: jaw {:.2} width {:+.2} round {:.2} closure {:.2}",
                q.jaw_open, q.width, q.round, q.closure
            );
            let f = r.render(q, i as u64).to_rgb_image();
            let crop = image::imageops::crop_imm(&f, cx0, cy0, cw, ch).to_image();
            image::imageops::resize(&crop, tw, th, image::imageops::FilterType::CatmullRom)
        })
        .collect();
    for (part, chunk) in frames.chunks(40).enumerate() {
        let rows = (chunk.len() as u32).div_ceil(cols);
        let mut sheet = image::RgbImage::new(cols * tw, rows * th);
        for (i, f) in chunk.iter().enumerate() {
            let (x, y) = ((i as u32 % cols) * tw, (i as u32 / cols) * th);
            image::imageops::overlay(&mut sheet, f, x as i64, y as i64);
        }
        sheet
            .save(format!("/tmp/lipcast_contact_sheet_{part}.png"))
            .unwrap();
    }
    let all_rows = (frames.len() as u32).div_ceil(cols);
    let mut sheet = image::RgbImage::new(cols * cw, all_rows * ch);
    for (i, f) in frames.iter().enumerate() {
        let small = image::imageops::resize(f, cw, ch, image::imageops::FilterType::Triangle);
        let (x, y) = ((i as u32 % cols) * cw, (i as u32 / cols) * ch);
        image::imageops::overlay(&mut sheet, &small, x as i64, y as i64);
    }
    sheet.save("/tmp/lipcast_contact_sheet.png").unwrap();
    r.render(&OPEN, 0)
        .to_rgb_image()
        .save("/tmp/lipcast_open_full.png")
        .unwrap();
    println!(
        "wrote /tmp/lipcast_contact_sheet.png ({} frames)",
        params.len()
    );
}
