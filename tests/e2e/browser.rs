//! The demo page in a real browser, against the real stack: the pinned `livekit-server` in the test's
//! namespace, lipcast (supervisor + workers), the demo's own web page (`deploy/web/server.py`, LiveKit's browser
//! SDK from its npm lock) and the demo agent (`deploy/agent/agent.py`, `LLM=none`: a canned sentence with
//! espeak-ng, livekit-plugins-bithuman's `AvatarSession` pointed at lipcast). Debian's `chromium`, headless,
//! driven by playwright-core (`tests/browser/demo_page.mjs`), opens the page and presses Join as a user does:
//! the avatar's `<video>` plays at the size lipcast publishes, its audio is attached, the mouth area (read
//! through a canvas) differs between speech and silence, and a screenshot lands in the test's output folder.
//! Leave ends the session.

use std::time::{Duration, Instant};

use lipcast_e2e::demo::{self, DemoAgent, DemoWeb};
use lipcast_e2e::{LiveKitServer, Supervisor, TestEnv, in_namespace, paths};
use serde_json::{Value, json};

#[path = "common/face.rs"]
mod face;
use face::mouth_center;

const SECRET: &str = "browser-test-secret";
/// The page's default room.
const ROOM: &str = "lipcast-demo";
const LIMIT: Duration = Duration::from_secs(300);
/// Seconds of frames the page samples: the canned sentence (about 8 s) twice, with the pauses between.
const SAMPLE_SECONDS: f64 = 25.0;

#[test]
fn browser_demo_page() {
    in_namespace("browser_demo_page", LIMIT, demo_page);
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn demo_page(env: &TestEnv) {
    let started = Instant::now();
    // Prerequisites first, with what to run when one is missing.
    lipcast_e2e::livekit_server::binary();
    paths::agents_python();
    demo::chromium();
    demo::browser_dir();

    // The page's token endpoint names the LiveKit server on the page's host at port 7880 (the compose demo's
    // layout): the server runs on its default ports on the same address as the page.
    lipcast_e2e::netns::add_default_route();
    let lk = LiveKitServer::start(env);
    assert_eq!(lk.ports.http, 7880);
    let sup = Supervisor::start_warm(&env.out_dir, SECRET, 1, &[]);
    let web = DemoWeb::start(lipcast_e2e::supervisor::free_port());
    let agent = DemoAgent::start(
        env,
        &lk.url(),
        &sup.url("/launch"),
        SECRET,
        &[
            ("LLM", "none"),
            ("TTS", "espeak"),
            // Pauses long enough for the mouth to rest between the repeats.
            ("CANNED_REPEAT_SECONDS", "4"),
        ],
    );
    let mouth = mouth_center();
    println!(
        "stack up in {} ms; mouth at ({:.3}, {:.3})",
        started.elapsed().as_millis(),
        mouth.0,
        mouth.1
    );

    let browser_started = Instant::now();
    let r = demo::run_demo_page(
        env,
        json!({
            "url": web.url("/"),
            "mouth": [mouth.0, mouth.1],
            // The mouth and a margin around it, as fractions of the frame.
            "box": [0.2, 0.12],
            "sample_seconds": SAMPLE_SECONDS,
            "play_timeout_ms": 60_000,
        }),
        Duration::from_secs(180),
    );
    let browser_took = browser_started.elapsed();
    let _ = std::fs::write(
        env.out_dir.join("browser-result.json"),
        serde_json::to_string_pretty(&r).unwrap_or_default(),
    );
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        r["ok"] == true && errors.is_empty(),
        "the browser run failed: {errors:#?}"
    );
    println!("browser: {}", r["browser_version"]);

    // Join to playing video.
    let join_to_play = f(&r["video_playing_at"]) - f(&r["join_clicked_at"]);
    println!("MEASURED join_to_playing_video_s={join_to_play:.2}");
    assert!(
        join_to_play < 30.0,
        "the video played only {join_to_play:.1} s after Join"
    );

    // The video plays: currentTime advances with the wall clock.
    let (v1, v2) = (&r["video"]["first"], &r["video"]["second"]);
    let advance = f(&v2["currentTime"]) - f(&v1["currentTime"]);
    let wall = f(&v2["wall"]) - f(&v1["wall"]);
    println!(
        "MEASURED video currentTime {:.3} -> {:.3}: advance {advance:.3} s over {wall:.3} s wall; paused={}",
        f(&v1["currentTime"]),
        f(&v2["currentTime"]),
        v2["paused"]
    );
    assert_eq!(v2["paused"], false, "{v2}");
    assert!(
        advance > 0.7 * wall && advance < 1.3 * wall + 0.2,
        "currentTime advanced {advance:.3} s in {wall:.3} s"
    );

    // At the size lipcast publishes.
    let (pw, ph) = demo::published_size(&sup.log())
        .unwrap_or_else(|| panic!("the worker logged no `published avatar_video` line"));
    let (vw, vh) = (
        v2["videoWidth"].as_u64().unwrap_or(0),
        v2["videoHeight"].as_u64().unwrap_or(0),
    );
    println!("MEASURED videoWidth x videoHeight = {vw}x{vh} (published {pw}x{ph})");
    assert_eq!(
        (vw, vh),
        (u64::from(pw), u64::from(ph)),
        "the page shows another size than lipcast publishes"
    );

    // Its audio track is attached and plays.
    let audio = r["audio"].as_array().cloned().unwrap_or_default();
    let attached = audio.iter().any(|a| {
        a["paused"] == false
            && a["tracks"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["readyState"] == "live"))
    });
    println!("MEASURED audio elements: {}", Value::from(audio.clone()));
    assert!(attached, "no playing <audio> with a live track: {audio:?}");

    // The mouth moves with the speech and rests in silence.
    let m = &r["mouth"];
    let (speech, silence) = (f(&m["speech_diff"]), f(&m["silence_diff"]));
    println!(
        "MEASURED mouth area {}: difference from rest speech={speech:.2} (p90 {:.2}) silence={silence:.2} (p90 {:.2}) \
         grey levels; {} speech / {} silent of {} frames over {:.1} s ({:.1} fps presented); loudness from {} (peak {:.4})",
        m["box"],
        f(&m["speech_diff_p90"]),
        f(&m["silence_diff_p90"]),
        m["speech_frames"],
        m["silence_frames"],
        m["frames"],
        f(&m["seconds"]),
        f(&m["fps"]),
        m["level_source"],
        f(&m["level_peak"]),
    );
    let (n_speech, n_silence) = (
        m["speech_frames"].as_u64().unwrap_or(0),
        m["silence_frames"].as_u64().unwrap_or(0),
    );
    assert!(
        n_speech >= 50 && n_silence >= 25,
        "{n_speech} speech and {n_silence} silent frames: the page heard no speech, or no pause"
    );
    assert!(
        speech > 2.5 * silence.max(0.5) && speech - silence > 4.0,
        "the mouth area does not differ between speech ({speech:.2}) and silence ({silence:.2})"
    );
    // Lip sync as the page plays it, on the page's own clock at frame resolution: the mouth's difference from
    // rest against the loudness envelope. A proxy (a mouth opens before a syllable's loudness peaks; measured
    // -123 to -164 ms here), so the bound only catches a page whose picture and sound drift apart.
    let (lag, corr) = (f(&m["mouth_lag_ms"]), f(&m["mouth_lag_corr"]));
    println!(
        "MEASURED page lip sync: mouth {lag:+.0} ms from the loudness (correlation {corr:.2}; negative: the mouth leads)"
    );
    assert!(
        corr > 0.5 && lag.abs() <= 300.0,
        "the mouth does not follow the sound on the page: lag {lag:.0} ms, correlation {corr:.2}"
    );
    // The page presents the frames (requestVideoFrameCallback counts what the compositor shows).
    assert!(
        f(&m["fps"]) > 15.0,
        "the page presented only {:.1} fps",
        f(&m["fps"])
    );

    // The screenshot.
    let shot = std::path::PathBuf::from(r["screenshot"].as_str().unwrap_or_default());
    let png = image::open(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    println!(
        "MEASURED screenshot {} {}x{} (while speaking: {})",
        shot.display(),
        png.width(),
        png.height(),
        r["screenshot_while_speaking"]
    );
    assert!(shot.starts_with(&env.out_dir));

    // The session the page's Join started, and Leave ended.
    let task = sup.task_in_room(ROOM);
    let task_id = task["task_id"].as_str().unwrap_or_default().to_owned();
    let done = sup.wait_ended(&task_id, Duration::from_secs(40));
    println!("MEASURED after Leave: {done}");
    assert_eq!(done["status"], "completed", "{done}");

    drop(agent);
    drop(web);
    drop(sup);
    drop(lk);
    println!(
        "MEASURED browser_run_s={:.1} test_s={:.1}",
        browser_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
