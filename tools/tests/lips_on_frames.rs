//! Lip sync measured on rendered frames: the held-out voice through the real front end and renderer, the face
//! mesh tracking every frame (`lipcast_tools::frames`). Asserted here is what the renderer holds today on the
//! committed portraits; issue 17's full targets (r >= 0.6, bilabials on the open-smile default) are printed by
//! `lipcast-look measure` and tracked in docs/look/README.md.

use lipcast_tools::{eval, frames, portraits};

#[test]
fn mouths_open_follow_speech_and_rest_in_silence_on_rendered_frames() {
    let (runtime, pack, mut models) = lipcast_tools::load_models().expect("face models");
    let clips = eval::load_heldout(&portraits::models_dir().join("eval/mouth-heldout"))
        .expect("held-out voice");
    for portrait in portraits::committed(&mut models).expect("committed portraits") {
        let prepared =
            portraits::prepare(&mut models, &portrait, pack.manifest.output.max_long_side)
                .expect("prepares");
        let tracked = frames::render_and_track(
            &runtime,
            &pack,
            &mut models,
            &prepared,
            &clips,
            &mut |_, _, _| {},
        )
        .expect("renders and tracks");
        let f = frames::figures(&tracked, prepared.rig.interocular);
        println!("MEASURED lips on frames, {}: {f}", portrait.name);
        assert!(
            f.speech_spread >= 0.12,
            "{}: the mouth opens by only {:.3} inter-ocular distances in speech",
            portrait.name,
            f.speech_spread
        );
        assert!(
            f.silence_spread <= 0.03,
            "{}: the mouth moves by {:.3} in silence",
            portrait.name,
            f.silence_spread
        );
        assert!(f.lag.abs() <= 1, "{}: lag {}", portrait.name, f.lag);
        if portrait.name == "hopper" {
            // The closed-mouth portrait: its lips part, and close on /m b p/.
            assert!(f.bilabials_closed >= 0.8, "hopper: bilabials {f}");
            assert!(
                f.r >= 0.45,
                "hopper: the gap does not follow the audio: {f}"
            );
        }
    }
}
