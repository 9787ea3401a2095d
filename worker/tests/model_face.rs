//! Portrait preparation with the real face models.

mod model_support;

use std::{io::Cursor, time::Instant};

use image::{ImageFormat, RgbImage};
use lipcast_worker::avatar::{PrepareError, PrepareOptions, landmarks as lm};

fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn face_found_on_the_default_portrait() {
    let mut models = model_support::face_models();
    eprintln!("face models loaded in {:.1} ms", models.load_ms);
    let bytes = model_support::default_portrait_bytes();
    let t = Instant::now();
    let p = models
        .prepare(&bytes, &PrepareOptions::default())
        .expect("face");
    eprintln!(
        "prepare (decode + detect + 2x mesh + rig): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!((p.width(), p.height()), (512, 512));
    assert!(p.detection.score > 0.7, "score {}", p.detection.score);
    assert!(p.presence > 0.9, "presence {}", p.presence);
    assert_eq!(p.landmarks.len(), 468);
    let pt = |i: usize| p.landmarks[i];
    // Anatomy: eyes above the nose above the mouth above the chin; the subject's right eye on the image's left.
    assert!(pt(159)[1] < pt(1)[1] && pt(1)[1] < pt(13)[1] && pt(14)[1] < pt(152)[1]);
    assert!(pt(33)[0] < pt(263)[0]);
    // The face is inside the picture, in its upper half to two thirds (the astronaut portrait).
    for q in &p.landmarks {
        assert!(q[0] > 0.0 && q[0] < 512.0 && q[1] > 0.0 && q[1] < 512.0);
    }
    let fh = pt(152)[1] - pt(10)[1];
    assert!(fh > 100.0 && fh < 400.0, "face height {fh}");
    assert_eq!(p.features.lips_outer.len(), lm::LIPS_OUTER.len());
    assert_eq!(p.features.lips_inner.len(), 20);
    // BlazeFace's mouth keypoint agrees with the mesh's mouth.
    let mk = p.detection.keypoints[3];
    let mc = [(pt(13)[0] + pt(14)[0]) / 2.0, (pt(13)[1] + pt(14)[1]) / 2.0];
    assert!(
        (mk[0] - mc[0]).hypot(mk[1] - mc[1]) < 0.1 * fh,
        "keypoint {mk:?} vs mesh {mc:?}"
    );

    // Timing of the two models alone.
    let img = p.image.clone();
    let t = Instant::now();
    for _ in 0..10 {
        models.detect(&img).unwrap();
    }
    let det_ms = t.elapsed().as_secs_f64() * 1e3 / 10.0;
    let t = Instant::now();
    for _ in 0..10 {
        models
            .mesh(
                &img,
                p.detection.cx,
                p.detection.cy,
                p.detection.w * 1.5,
                0.0,
            )
            .unwrap();
    }
    let mesh_ms = t.elapsed().as_secs_f64() * 1e3 / 10.0;
    eprintln!("detection {det_ms:.2} ms/call, mesh {mesh_ms:.2} ms/call (incl. pre-processing)");
}

#[test]
fn any_size_and_aspect_is_capped_even_and_found() {
    let base = image::load_from_memory(&model_support::default_portrait_bytes())
        .unwrap()
        .to_rgb8();
    // A tall 3:4 portrait, larger than the cap, odd sizes.
    let tall = image::imageops::resize(&base, 901, 901, image::imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(901, 1201, image::Rgb([40, 60, 90]));
    image::imageops::overlay(&mut canvas, &tall, 0, 150);
    let mut models = model_support::face_models();
    let p = models
        .prepare(&encode_png(&canvas), &PrepareOptions::default())
        .expect("face on the tall portrait");
    assert_eq!(p.height(), 512);
    assert_eq!(p.width() % 2, 0);
    assert_eq!(p.width(), 384);
    // A small one stays small (no upscaling) but even.
    let small = image::imageops::resize(&base, 301, 255, image::imageops::FilterType::Triangle);
    let p = models
        .prepare(&encode_png(&small), &PrepareOptions::default())
        .expect("face on the small portrait");
    assert_eq!((p.width(), p.height()), (300, 254));
}

#[test]
fn tilted_portrait_gets_a_tilted_mesh() {
    let base = image::load_from_memory(&model_support::default_portrait_bytes())
        .unwrap()
        .to_rgb8();
    let mut models = model_support::face_models();
    let upright = models.prepare_image(base.clone()).unwrap();
    // Rotate the picture by 25 degrees about the face centre: the eye line must follow.
    let theta = 25f32.to_radians();
    let (c, s) = (theta.cos(), theta.sin());
    let centre = [upright.detection.cx, upright.detection.cy];
    let tilted = RgbImage::from_fn(512, 512, |x, y| {
        let (dx, dy) = (x as f32 - centre[0], y as f32 - centre[1]);
        // Inverse rotation to sample the source.
        let (sx, sy) = (centre[0] + c * dx + s * dy, centre[1] - s * dx + c * dy);
        if sx >= 0.0 && sy >= 0.0 && sx < 511.0 && sy < 511.0 {
            *base.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    });
    let p = models
        .prepare_image(tilted)
        .expect("face on the tilted portrait");
    let eye = |q: &lipcast_worker::avatar::PreparedPortrait| {
        let (a, b) = (q.landmarks[33], q.landmarks[263]);
        (b[1] - a[1]).atan2(b[0] - a[0])
    };
    let turned = (eye(&p) - eye(&upright)).to_degrees();
    eprintln!("eye line turned by {turned:.1} degrees (picture turned by 25)");
    assert!((turned - 25.0).abs() < 4.0, "{turned}");
}

#[test]
fn no_face_on_blank_or_noise_images() {
    let mut models = model_support::face_models();
    for (name, img) in [
        ("black", RgbImage::new(640, 480)),
        (
            "grey",
            RgbImage::from_pixel(512, 512, image::Rgb([128, 128, 128])),
        ),
        (
            "noise",
            RgbImage::from_fn(400, 300, |x, y| {
                let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503))
                    .wrapping_mul(2_246_822_519);
                image::Rgb([(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8])
            }),
        ),
    ] {
        match models.prepare(&encode_png(&img), &PrepareOptions::default()) {
            Err(PrepareError::NoFaceDetected) => {}
            Err(e) => panic!("{name}: expected NoFaceDetected, got {e}"),
            Ok(p) => panic!("{name}: face found with score {}", p.detection.score),
        }
    }
    assert_eq!(PrepareError::NoFaceDetected.to_string(), "No face detected");
}

#[test]
fn undecodable_bytes_are_a_decode_error() {
    let mut models = model_support::face_models();
    for bytes in [
        &b"not an image"[..],
        &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0][..],
        &[][..],
    ] {
        assert!(matches!(
            models.prepare(bytes, &PrepareOptions::default()),
            Err(PrepareError::Decode(_))
        ));
    }
}

#[test]
fn several_faces_of_similar_size_are_refused_a_small_one_beside_is_not() {
    let base = image::load_from_memory(&model_support::default_portrait_bytes())
        .unwrap()
        .to_rgb8();
    let mut models = model_support::face_models();
    // The face and a little around it, as a head-and-shoulders crop.
    let d = models.detect(&base).unwrap().expect("the default face");
    let side = (1.8 * d.w.max(d.h)) as u32;
    let (x0, y0) = (
        (d.cx - side as f32 / 2.0).max(0.0) as u32,
        (d.cy - side as f32 / 2.0).max(0.0) as u32,
    );
    let base = image::imageops::crop_imm(&base, x0, y0, side, side).to_image();
    let (w, h) = base.dimensions();
    // Two people side by side: which of them speaks?
    let mut pair = RgbImage::from_pixel(2 * w, h, image::Rgb([200, 200, 200]));
    image::imageops::overlay(&mut pair, &base, 0, 0);
    image::imageops::overlay(&mut pair, &base, i64::from(w), 0);
    match models.prepare(&encode_png(&pair), &PrepareOptions::default()) {
        Err(PrepareError::Unusable(why)) => {
            assert!(why.contains("2 faces"), "{why}");
        }
        Ok(_) => panic!("two faces side by side were accepted"),
        Err(e) => panic!("two faces: expected Unusable, got {e}"),
    }
    // The speaker with a small face far behind: fine.
    let small = image::imageops::resize(&base, w / 4, h / 4, image::imageops::FilterType::Triangle);
    let mut scene = RgbImage::from_pixel(w + w / 4, h, image::Rgb([200, 200, 200]));
    image::imageops::overlay(&mut scene, &base, 0, 0);
    image::imageops::overlay(&mut scene, &small, i64::from(w), i64::from(h / 2));
    let p = models
        .prepare(&encode_png(&scene), &PrepareOptions::default())
        .expect("a small second face does not make the portrait ambiguous");
    assert!(p.detection.cx < w as f32, "the main face was chosen");
}
