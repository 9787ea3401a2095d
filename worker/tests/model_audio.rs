//! The DSP front end on silence and on espeak-ng speech.

mod model_support;

use lipcast_worker::audio::{DspFrontend, MouthFrontend, MouthParams, SAMPLES_PER_FRAME};

fn run(pcm: &[f32]) -> Vec<MouthParams> {
    let mut f = DspFrontend::new();
    let mut out = Vec::new();
    // Push in uneven chunks like a network stream.
    for chunk in pcm.chunks(317) {
        f.push(chunk);
        out.extend(std::iter::from_fn(|| f.pop()));
    }
    f.flush();
    out.extend(std::iter::from_fn(|| f.pop()));
    assert_eq!(out.len(), pcm.len().div_ceil(SAMPLES_PER_FRAME));
    out
}

#[test]
fn silence_keeps_the_mouth_closed() {
    for pcm in [
        vec![0.0f32; 16_000 * 3],
        (0..48_000)
            .map(|i| 1e-4 * ((i * 7919) % 13) as f32 - 6e-4)
            .collect(),
    ] {
        let params = run(&pcm);
        assert!(
            params.iter().all(|p| *p == MouthParams::REST),
            "{:?}",
            params.iter().find(|p| **p != MouthParams::REST)
        );
    }
}

#[test]
fn speech_opens_the_mouth_and_silence_closes_it_again() {
    let speech = model_support::espeak(
        "Hello, my name is Paul and I am talking to you about the weather today.",
        "en-us",
    );
    let mut pcm = vec![0.0f32; 8_000];
    pcm.extend_from_slice(&speech);
    pcm.extend(std::iter::repeat_n(0.0, 16_000));
    let params = run(&pcm);
    let lead = 8_000 / SAMPLES_PER_FRAME;
    let speech_frames = &params[lead + 1..lead + speech.len() / SAMPLES_PER_FRAME - 1];
    let open = speech_frames.iter().filter(|p| p.opening() > 0.15).count() as f32
        / speech_frames.len() as f32;
    let max = speech_frames.iter().map(|p| p.jaw_open).fold(0.0, f32::max);
    eprintln!(
        "speech: {} frames, open on {:.0}%, max jaw {max:.2}",
        speech_frames.len(),
        open * 100.0
    );
    assert!(
        open > 0.35,
        "mouth open on only {:.0}% of speech frames",
        open * 100.0
    );
    assert!(max > 0.6);
    // Lead-in silence: at rest. Trailing silence: back at rest within 400 ms.
    assert!(params[..lead - 1].iter().all(|p| *p == MouthParams::REST));
    let tail = &params[params.len() - 15..];
    assert!(tail.iter().all(|p| *p == MouthParams::REST), "{tail:?}");
    for p in &params {
        assert_eq!(*p, p.clamped(), "parameters within their ranges");
    }
}

#[test]
fn vowels_move_width_and_rounding_apart() {
    let ee = run(&model_support::espeak("eeeeee", "en-us"));
    let oo = run(&model_support::espeak("ooooo", "en-us"));
    let mean = |v: &[MouthParams], f: fn(&MouthParams) -> f32| {
        let open: Vec<_> = v.iter().filter(|p| p.jaw_open > 0.2).collect();
        open.iter().map(|p| f(p)).sum::<f32>() / open.len().max(1) as f32
    };
    let (ee_w, oo_w) = (mean(&ee, |p| p.width), mean(&oo, |p| p.width));
    let (ee_r, oo_r) = (mean(&ee, |p| p.round), mean(&oo, |p| p.round));
    eprintln!("ee: width {ee_w:.2} round {ee_r:.2}; oo: width {oo_w:.2} round {oo_r:.2}");
    assert!(ee_w > oo_w + 0.2, "ee wider than oo");
    assert!(oo_r > ee_r + 0.2, "oo rounder than ee");
}

#[test]
fn bilabials_close_the_lips_between_vowels() {
    // Six words, no pauses, one bilabial each (the vowels between words run together): the lips must meet on
    // at least five of the six /b/, /m/, /p/.
    let pcm = model_support::espeak("aba ama apa abba amma appa", "en-us");
    let params = run(&pcm);
    let opening: Vec<f32> = params.iter().map(|p| p.opening()).collect();
    let line: String = opening
        .iter()
        .map(|o| match o {
            o if *o < 0.1 => '_',
            o if *o < 0.4 => '.',
            o if *o < 0.7 => 'o',
            _ => 'O',
        })
        .collect();
    eprintln!("opening per frame: {line}");
    // Count open -> nearly closed -> open dips.
    let mut dips = 0;
    let mut was_open = false;
    let mut closed_since_open = false;
    for o in &opening {
        if *o > 0.45 {
            if was_open && closed_since_open {
                dips += 1;
            }
            was_open = true;
            closed_since_open = false;
        } else if *o < 0.2 && was_open {
            closed_since_open = true;
        }
    }
    eprintln!("{dips} closures between open vowels");
    assert!(
        dips >= 5,
        "expected the lips to meet between the vowels of 6 words: {line}"
    );
}
