//! The full path: `POST /launch` -> a warm worker -> joins the room -> LiveKit's real Python SDK, as the agent,
//! sends speech on `lk.audio_stream` -> lip-synced video and the same speech come back out of the room. Real
//! supervisor, real workers, real engine; each test in its own namespace.
//!
//! The sessions meet in the real `livekit-server`, but for [`session_speech_to_lip_synced_video`]: it judges lip
//! sync the way a receiver plays it, every received frame and audio packet placed on the sender's clock through
//! its RTCP sender reports, and only the LiveKit-protocol test room (`tests/room/room.py`, aiortc) sees RTP
//! timestamps and sender reports (LiveKit's SDK hands a viewer decoded frames and audio without them). The
//! same session through the real server, on the viewer's arrival clock, is `real_livekit.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lipcast_e2e::analysis;
use lipcast_e2e::{
    Agent, LiveKitServer, RoomProcess, Supervisor, TestEnv, Viewer, in_namespace, paths,
};
use serde_json::{Value, json};

#[path = "common/face.rs"]
mod face;
use face::mouth_center;

const AVATAR: &str = "bithuman-avatar-agent";
const AGENT: &str = "voice-agent";
const LIMIT: Duration = Duration::from_secs(300);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Where the sessions meet.
enum Place {
    Server(LiveKitServer),
    /// Only where a test needs RTP timestamps and sender reports (see the module's comment).
    TestRoom(RoomProcess),
}

/// A room, a supervisor with a warm worker, and the agent in the room.
struct Stage {
    place: Place,
    sup: Supervisor,
}

impl Stage {
    fn test_room(&self) -> &RoomProcess {
        match &self.place {
            Place::TestRoom(room) => room,
            Place::Server(_) => panic!("this test needs the test room"),
        }
    }

    /// The test room's final report (its sessions must have ended).
    fn test_room_report(self) -> Value {
        match self.place {
            Place::TestRoom(room) => room.stop_and_report(),
            Place::Server(_) => panic!("the real server keeps no report: only the test room does"),
        }
    }

    fn url(&self) -> String {
        match &self.place {
            Place::Server(lk) => lk.url(),
            Place::TestRoom(room) => room.url(),
        }
    }
}

/// The real server and a supervisor with a warm worker.
fn stage(env: &TestEnv, sup_env: &[(&str, &str)]) -> Stage {
    staged(Place::Server(LiveKitServer::start(env)), env, sup_env)
}

fn staged(place: Place, env: &TestEnv, sup_env: &[(&str, &str)]) -> Stage {
    let mut all = vec![("AUTO_PREWARM", "true"), ("WARM_WORKERS", "1")];
    all.extend_from_slice(sup_env);
    let sup = Supervisor::start(&env.out_dir, &all);
    sup.wait_ready(Duration::from_secs(60));
    sup.wait_warm(1, Duration::from_secs(60));
    Stage { place, sup }
}

fn agent(env: &TestEnv, s: &Stage, room_name: &str, identity: &str, avatar: &str) -> Agent {
    let mut agent = Agent::start(
        &s.url(),
        &env.mint(identity, room_name, "agent", &[]),
        avatar,
        false,
    );
    agent.expect("connected", Duration::from_secs(20));
    agent
}

/// What livekit-plugins-bithuman sends by default: JSON, `api-secret` header, base64 JPEG.
fn launch_json(env: &TestEnv, s: &Stage, room_name: &str, avatar: &str, agent: &str) -> String {
    let token = env.mint(
        avatar,
        room_name,
        "agent",
        &[("lk.publish_on_behalf", agent)],
    );
    let body = json!({
        "livekit_url": s.url(), "livekit_token": token, "room_name": room_name, "mode": "gpu",
        "image": STANDARD.encode(paths::default_portrait()),
    });
    let (status, reply) = s
        .sup
        .post_json("/launch", &body, &[("api-secret", "unused")]);
    assert_eq!(status, 200, "launch: {reply}");
    assert_eq!(reply["status"], "pending", "{reply}");
    reply["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task_id: {reply}"))
        .to_owned()
}

/// The plugin's multipart shape: `Authorization: Bearer`, an `avatar_image` file named avatar.jpg.
fn launch_multipart(
    env: &TestEnv,
    s: &Stage,
    room_name: &str,
    avatar: &str,
    agent: &str,
) -> String {
    let token = env.mint(
        avatar,
        room_name,
        "agent",
        &[("lk.publish_on_behalf", agent)],
    );
    let part = reqwest::blocking::multipart::Part::bytes(paths::default_portrait())
        .file_name("avatar.jpg")
        .mime_str("image/jpeg")
        .unwrap_or_else(|e| panic!("{e}"));
    let form = reqwest::blocking::multipart::Form::new()
        .text("livekit_url", s.url())
        .text("livekit_token", token)
        .text("room_name", room_name.to_owned())
        .text("model", "expression")
        .part("avatar_image", part);
    let r = s
        .sup
        .http
        .post(s.sup.url("/launch?async=true"))
        .bearer_auth("unused")
        .multipart(form)
        .send()
        .unwrap_or_else(|e| panic!("launch: {e}"));
    assert_eq!(r.status().as_u16(), 200);
    let reply: Value = r.json().unwrap_or(Value::Null);
    reply["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no task_id: {reply}"))
        .to_owned()
}

fn participant(report: &Value, identity: &str) -> Value {
    report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().rev().find(|p| p["identity"] == identity))
        .cloned()
        .unwrap_or_else(|| panic!("{identity} never joined the room"))
}

#[test]
fn session_speech_to_lip_synced_video() {
    in_namespace("session_speech_to_lip_synced_video", LIMIT, speech_to_video);
}

/// Launch, idle, a sentence sent at once (as TTS engines do), silence, a sentence streamed in real time,
/// silence, the agent leaves: first-frame time, pacing, mouth motion, the audio round trip and A/V sync.
fn speech_to_video(env: &TestEnv) {
    let room_name = "speech";
    let s = staged(Place::TestRoom(RoomProcess::start(env, 7880)), env, &[]);
    let mut agent = agent(env, &s, room_name, AGENT, AVATAR);
    let mouth_at = mouth_center();

    let t_launch = unix_now();
    let task_id = launch_json(env, &s, room_name, AVATAR, AGENT);
    let r = s
        .test_room()
        .wait_for(Duration::from_secs(10), "the avatar's first frame", |r| {
            r["participants"].as_array().is_some_and(|ps| {
                ps.iter().any(|p| {
                    p["identity"] == AVATAR && p["video"][0]["frames"].as_u64().unwrap_or(0) > 0
                })
            })
        });
    let first = participant(&r, AVATAR)["video"][0]["first_at_unix"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let first_ms = (first - t_launch) * 1e3;
    println!("MEASURED launch_to_first_decoded_frame_ms={first_ms:.0} (warm pool)");
    assert!(
        first_ms < 3_000.0,
        "first frame only {first_ms:.0} ms after the launch"
    );
    let task = s.sup.wait_task(&task_id, Duration::from_secs(5), |t| {
        t["status"] == "running"
    });
    println!("task running: first_frame_ms={}", task["first_frame_ms"]);

    agent.send("wait_track avatar_video 15");
    agent.expect("track_seen", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    let wav1 = env.out_dir.join("speech1.wav");
    let (rate1, sent1) = analysis::espeak(
        "Hello there. My mom made a big apple pie for the whole family.",
        &wav1,
    );
    agent.send(&format!("send_wav {}", wav1.display()));
    agent.expect("wav_sent", Duration::from_secs(20));
    let fin1 = agent.expect_where("rpc", Duration::from_secs(30), |v| {
        v["method"] == "lk.playback_finished"
    });
    std::thread::sleep(Duration::from_secs(3));

    // Two sentences streamed at real time, like a streaming TTS: the first may run dry once (the worker then
    // learns to buffer for this agent), the second must play without a gap.
    let wav2 = env.out_dir.join("speech2.wav");
    let (_, sent2) = analysis::espeak("Boats bob by the pier while people wave.", &wav2);
    let wav3 = env.out_dir.join("speech3.wav");
    let (_, sent3) = analysis::espeak("Peter bought a blue umbrella.", &wav3);
    let mut last = fin1.clone();
    let mut fins = vec![fin1];
    for wav in [&wav2, &wav3] {
        agent.send(&format!("send_wav {} 1", wav.display()));
        agent.expect("wav_sent", Duration::from_secs(30));
        let prev = last["unix"].as_f64();
        last = agent.expect_where("rpc", Duration::from_secs(30), |v| {
            v["method"] == "lk.playback_finished" && v["unix"].as_f64() > prev
        });
        fins.push(last.clone());
        std::thread::sleep(Duration::from_secs(3));
    }

    // playback_finished reports each segment's exact length.
    for (fin, sent) in fins.iter().zip([&sent1, &sent2, &sent3]) {
        let p: Value =
            serde_json::from_str(fin["payload"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
        let truth = sent.len() as f64 / f64::from(rate1);
        let pos = p["playback_position"].as_f64().unwrap_or(-1.0);
        println!(
            "MEASURED playback_finished position={pos:.4} s truth={truth:.4} s interrupted={}",
            p["interrupted"]
        );
        assert_eq!(p["interrupted"], Value::Bool(false));
        assert!((pos - truth).abs() < 0.04, "position {pos} vs {truth}");
    }

    agent.send("leave");
    agent.expect("left", Duration::from_secs(10));
    let task = s.sup.wait_task(&task_id, Duration::from_secs(10), |t| {
        t["status"] == "completed"
    });
    assert_eq!(task["end_reason"], "agent_left", "{task}");
    // The session's figures are stored with the task.
    let stats = &task["stats"];
    println!("MEASURED task stats {stats}");
    assert!(stats["frames"].as_u64().unwrap_or(0) > 300, "{stats}");
    assert!(
        stats["fps"]
            .as_f64()
            .is_some_and(|f| (f - 25.0).abs() <= 1.0),
        "{stats}"
    );

    // The worker's own capture intervals (every frame, wall clock), reported through /metrics.
    let buckets = s.sup.histogram("lipcast_frame_interval_seconds");
    let count = |le: f64| {
        buckets
            .iter()
            .find(|(b, _)| *b == le || (*b - le).abs() < 1e-9)
            .map_or(0.0, |(_, c)| *c)
    };
    let total = count(f64::INFINITY);
    println!(
        "MEASURED capture intervals: {total} frames, >45 ms: {}, >60 ms: {}, >100 ms: {}",
        total - count(0.045),
        total - count(0.06),
        total - count(0.1)
    );
    assert!(
        total > 300.0,
        "the worker reported only {total} frame intervals"
    );
    // On a loaded 2-core machine the scheduler may hold the loop back now and then; never for long, rarely.
    assert!(
        total - count(0.25) == 0.0,
        "the worker's loop stalled for more than 250 ms"
    );
    assert!(
        total - count(0.1) <= (total * 0.01).max(3.0),
        "too many late frames"
    );

    let report = s.test_room_report();
    let rx = analysis::received(&report, AVATAR, mouth_at);
    let (fps, gap, arrival_gap) = rx.pacing();
    println!(
        "MEASURED fps={fps:.2} max_interval_ms={:.1} (sender timestamps) max_arrival_gap_ms={:.0} frames={} over {:.1} s",
        gap * 1e3,
        arrival_gap * 1e3,
        rx.frames.len(),
        rx.video_t.last().unwrap_or(&0.0) - rx.video_t.first().unwrap_or(&0.0)
    );
    assert!((fps - 25.0).abs() <= 1.0, "fps {fps}");
    assert!(
        gap <= 0.125,
        "a {:.0} ms hole in the published frames",
        gap * 1e3
    );
    // Arrival gaps include the test receiver's own stalls (aiortc decoding in Python on 2 busy cores): a
    // sanity bound only; the worker's own capture intervals are checked below, from /metrics.
    assert!(
        arrival_gap <= 1.0,
        "frames arrived with a {:.0} ms gap",
        arrival_gap * 1e3
    );

    // The mouth moves during speech and rests in silence.
    let loud = rx.loud();
    let near_speech = |t: f64, margin: f64| loud.iter().any(|l| (l - t).abs() <= margin);
    let (mut speech, mut silence) = (Vec::new(), Vec::new());
    for (t, m) in rx.video_t.iter().zip(&rx.mouth) {
        if near_speech(*t, 0.02) {
            speech.push(*m);
        } else if !near_speech(*t, 0.4) {
            silence.push(*m);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let quiet = silence.iter().filter(|m| **m < 2.0).count() as f64 / silence.len().max(1) as f64;
    println!(
        "MEASURED mouth_motion speech={:.2} silence={:.2} still_in_silence={:.0}% ({} / {} frames)",
        mean(&speech),
        mean(&silence),
        quiet * 100.0,
        speech.len(),
        silence.len()
    );
    assert!(
        speech.len() > 50 && silence.len() > 100,
        "{} speech, {} silent frames",
        speech.len(),
        silence.len()
    );
    assert!(
        mean(&speech) > 3.0 * mean(&silence).max(0.5),
        "the mouth does not follow the speech"
    );
    assert!(
        quiet > 0.9,
        "the mouth moves in silence ({:.0}% still)",
        quiet * 100.0
    );

    // The speech comes back out: same length and shape as sent.
    let sent_speech = |s: &[i16], rate: u32| {
        let env = analysis::envelope(s, (rate / 50) as usize);
        let peak = env.iter().copied().fold(0.0, f64::max);
        let on: Vec<usize> = (0..env.len()).filter(|i| env[*i] > 0.1 * peak).collect();
        (on.last().copied().unwrap_or(0) - on.first().copied().unwrap_or(0)) as f64 * 0.02
    };
    let spans = {
        // Loud spans in the received audio, split at silences over 1 s.
        let mut spans: Vec<(f64, f64)> = Vec::new();
        for t in &loud {
            match spans.last_mut() {
                Some((_, end)) if t - *end < 1.0 => *end = *t,
                _ => spans.push((*t, *t)),
            }
        }
        spans
    };
    let expected = [
        sent_speech(&sent1, rate1),
        sent_speech(&sent2, rate1),
        sent_speech(&sent3, rate1),
    ];
    println!("MEASURED speech spans received={spans:?} sent_lengths={expected:?}");
    assert_eq!(
        spans.len(),
        3,
        "three utterances expected in the avatar's audio: {spans:?}"
    );
    let length = |i: usize| spans[i].1 - spans[i].0;
    println!(
        "MEASURED utterance lengths: burst {:+.3} s, first real-time {:+.3} s, second real-time {:+.3} s (received - sent)",
        length(0) - expected[0],
        length(1) - expected[1],
        length(2) - expected[2]
    );
    assert!(
        (length(0) - expected[0]).abs() <= 0.06,
        "burst utterance: {:.3} s vs {:.3} s",
        length(0),
        expected[0]
    );
    assert!(
        length(1) - expected[1] <= 0.6,
        "the first real-time utterance stalled for too long"
    );
    assert!(
        (length(2) - expected[2]).abs() <= 0.06,
        "second real-time utterance: {:.3} s vs {:.3} s",
        length(2),
        expected[2]
    );
    let received_env = analysis::envelope(&rx.audio.samples, (rx.audio.rate / 50) as usize);
    let sent_env: Vec<f64> = analysis::envelope(&sent1, (rate1 / 50) as usize);
    let (lag, corr) = analysis::best_lag(&sent_env, &received_env, received_env.len() as i64);
    println!("MEASURED audio envelope correlation={corr:.3} at lag {lag} x 20 ms");
    assert!(
        corr > 0.8,
        "the avatar's audio is not the speech that was sent (corr {corr:.3})"
    );

    // A/V sync on the sender's clock (what a receiver plays): mouth motion vs the speech envelope.
    let (shift, c) = analysis::av_shift(&rx.video_t, &rx.mouth, &rx.audio_t, &rx.audio_env, 0.2);
    println!(
        "MEASURED av_offset_ms={:.0} (positive: audio after the mouth) correlation={c:.3}",
        shift * 1e3
    );
    assert!(
        c > 0.5,
        "mouth motion does not correlate with the speech ({c:.3})"
    );
    assert!(
        shift.abs() <= 0.04,
        "audio and mouth are {:.0} ms apart",
        shift * 1e3
    );
}

#[test]
fn session_interruption() {
    in_namespace("session_interruption", LIMIT, interruption);
}

/// `lk.clear_buffer` mid-segment: "ok", the mouth closes, `lk.playback_finished{interrupted: true}` with the
/// position actually played; the rest of the stream is dropped and the next segment plays.
fn interruption(env: &TestEnv) {
    let room_name = "interrupt";
    let s = stage(env, &[]);
    let mut agent = agent(env, &s, room_name, AGENT, AVATAR);
    let viewer = Viewer::start(env, &s.url(), room_name, "viewer");
    let mouth_at = mouth_center();
    let task_id = launch_multipart(env, &s, room_name, AVATAR, AGENT);
    agent.send("wait_track avatar_video 15");
    agent.expect("track_seen", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    // A sweep: its frequency tells how far into it the viewer heard (speech has no such clock).
    let (rate, f0, slope) = (24_000, 200.0, 900.0);
    let wav = env.out_dir.join("sweep.wav");
    analysis::write_wav(&wav, rate, &analysis::sweep(rate, 4.0, f0, slope, 0.3));
    agent.send(&format!("send_wav {}", wav.display()));
    let started = agent.expect_where("rpc", Duration::from_secs(20), |v| {
        v["method"] == "lk.playback_started"
    });
    std::thread::sleep(Duration::from_millis(2_500));
    let t_clear = unix_now();
    agent.send("clear_buffer");
    let answer = agent.expect("clear_buffer_result", Duration::from_secs(10));
    assert_eq!(answer["payload"].as_str(), Some("ok"), "{answer}");
    let fin = agent.expect_where("rpc", Duration::from_secs(5), |v| {
        v["method"] == "lk.playback_finished"
    });
    let p: Value =
        serde_json::from_str(fin["payload"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
    let pos = p["playback_position"].as_f64().unwrap_or(-1.0);
    println!(
        "MEASURED interrupted position={pos:.3} s (agent's clock: started -> clear {:.3} s; clear sent -> finished received {:.0} ms)",
        t_clear - started["unix"].as_f64().unwrap_or(f64::NAN),
        (fin["unix"].as_f64().unwrap_or(0.0) - t_clear) * 1e3
    );
    assert_eq!(p["interrupted"], Value::Bool(true), "{p}");
    std::thread::sleep(Duration::from_secs(2));
    // A new segment after the interruption plays normally.
    let wav2 = env.out_dir.join("after.wav");
    analysis::espeak("Sure, go ahead.", &wav2);
    agent.send(&format!("send_wav {}", wav2.display()));
    let fin2 = agent.expect_where("rpc", Duration::from_secs(20), |v| {
        v["method"] == "lk.playback_finished" && v["unix"].as_f64() > fin["unix"].as_f64()
    });
    assert!(
        fin2["payload"]
            .as_str()
            .is_some_and(|p| p.contains("\"interrupted\": false")),
        "{fin2}"
    );
    std::thread::sleep(Duration::from_secs(1));
    agent.send("leave");
    s.sup.wait_task(&task_id, Duration::from_secs(10), |t| {
        t["status"] == "completed"
    });

    let report = viewer.stop_and_report();
    let rx = analysis::received_by_viewer(&report, AVATAR, mouth_at);
    // The clear, on the viewer's clock: when the agent sent it; frames from then on, on arrival.
    let t0 = report["t0_unix"].as_f64().unwrap_or(0.0);
    let clear_at = t_clear - t0;
    let rest: Vec<f64> = rx
        .frames
        .iter()
        .zip(&rx.mouth)
        .filter(|(f, _)| f.at < clear_at - 3.0)
        .map(|(_, m)| *m)
        .collect();
    let threshold = 2.0f64.max(rest.iter().copied().fold(0.0, f64::max));
    let closed_at = rx
        .frames
        .iter()
        .zip(&rx.mouth)
        .skip_while(|(f, _)| f.at < clear_at)
        .collect::<Vec<_>>()
        .windows(5)
        .find(|w| w.iter().all(|(_, m)| **m <= threshold))
        .map(|w| w[0].0.at);
    let closed_ms = closed_at.map_or(f64::INFINITY, |t| (t - clear_at) * 1e3);
    let speaking_before = rx
        .frames
        .iter()
        .zip(&rx.mouth)
        .filter(|(f, _)| f.at > clear_at - 1.0 && f.at < clear_at)
        .map(|(_, m)| *m)
        .fold(0.0, f64::max);
    println!(
        "MEASURED mouth_closed_after_clear_ms={closed_ms:.0} (arrival clock, includes the RPC trip) motion_before={speaking_before:.1}"
    );
    assert!(
        speaking_before > threshold,
        "the mouth was not moving before the clear"
    );
    assert!(
        closed_ms <= 250.0,
        "the mouth closed {closed_ms:.0} ms after the clear"
    );

    // The truth of the position: how far into the sweep the viewer heard before it stopped.
    let truth = analysis::sweep_position(&rx.audio.samples, rx.audio.rate, f0, slope)
        .unwrap_or_else(|| panic!("no sweep in the viewer's audio"));
    println!("MEASURED interrupted position={pos:.3} s heard_by_the_viewer={truth:.3} s (+-0.015)");
    assert!(
        (pos - truth).abs() <= 0.08,
        "reported position {pos:.3} s, the viewer heard {truth:.3} s"
    );
}

#[test]
fn session_idle_timeout_and_agent_timeout() {
    in_namespace(
        "session_idle_timeout_and_agent_timeout",
        LIMIT,
        idle_timeout,
    );
}

/// No audio for SESSION_IDLE_TIMEOUT: the task completes with reason idle. An agent that never comes:
/// the task fails with reason agent_timeout.
fn idle_timeout(env: &TestEnv) {
    let s = stage(
        env,
        &[
            ("SESSION_IDLE_TIMEOUT", "3"),
            ("AGENT_JOIN_TIMEOUT", "3"),
            ("WARM_WORKERS", "2"),
        ],
    );
    let _agent = agent(env, &s, "idle", AGENT, AVATAR);
    let task = launch_json(env, &s, "idle", AVATAR, AGENT);
    s.sup
        .wait_task(&task, Duration::from_secs(5), |t| t["status"] == "running");
    let t = std::time::Instant::now();
    let done = s
        .sup
        .wait_task(&task, Duration::from_secs(12), |t| t["status"] != "running");
    println!(
        "MEASURED idle end after {:.1} s: {done}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "idle", "{done}");

    let lonely = launch_json(env, &s, "nobody-here", "avatar-2", "agent-that-never-comes");
    let done = s.sup.wait_task(&lonely, Duration::from_secs(15), |t| {
        t["status"] == "failed" || t["status"] == "completed"
    });
    println!("agent timeout: {done}");
    assert_eq!(done["status"], "failed");
    assert_eq!(done["end_reason"], "agent_timeout");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not join")),
        "{done}"
    );
}

#[test]
fn session_livekit_agents_audio_output() {
    in_namespace(
        "session_livekit_agents_audio_output",
        LIMIT,
        agents_audio_output,
    );
}

/// The agent side as real voice agents run it: livekit-agents' own `DataStreamAudioOutput`, configured as
/// livekit-plugins-bithuman does. A whole answer plays out (`wait_for_playout` returns its length), and an
/// interrupted one reports the position played, before the library's clear-buffer timeout fakes one.
fn agents_audio_output(env: &TestEnv) {
    let room_name = "agents";
    let s = stage(env, &[]);
    let mut agent =
        Agent::start_agents(&s.url(), &env.mint(AGENT, room_name, "agent", &[]), AVATAR);
    agent.expect("connected", Duration::from_secs(30));
    let task = launch_json(env, &s, room_name, AVATAR, AGENT);
    s.sup
        .wait_task(&task, Duration::from_secs(10), |t| t["status"] == "running");

    let wav = env.out_dir.join("answer.wav");
    let (rate, sent) = analysis::espeak(
        "Of course. The meeting is at three, in the big room upstairs.",
        &wav,
    );
    let truth = sent.len() as f64 / f64::from(rate);
    agent.send(&format!("say {}", wav.display()));
    agent.expect("said", Duration::from_secs(30));
    agent.send("wait_playout 30");
    let p = agent.expect("playout", Duration::from_secs(35));
    println!("MEASURED livekit-agents playout: {p} (sent {truth:.3} s)");
    assert_eq!(p["interrupted"], Value::Bool(false), "{p}");
    let pos = p["playback_position"].as_f64().unwrap_or(-1.0);
    assert!((pos - truth).abs() < 0.04, "position {pos} vs {truth}");

    // Interrupted: streamed at real time (as TTS does), cleared 1.5 s in.
    let long = env.out_dir.join("long.wav");
    analysis::espeak(
        "Let me tell you everything about the schedule for the rest of the week, day by day.",
        &long,
    );
    agent.send("interrupt 1.5");
    agent.send(&format!("say {} 1", long.display()));
    agent.expect("interrupted", Duration::from_secs(10));
    agent.expect("said", Duration::from_secs(30));
    agent.send("wait_playout 10");
    let p = agent.expect("playout", Duration::from_secs(15));
    println!("MEASURED livekit-agents interrupted playout: {p}");
    assert_eq!(p["interrupted"], Value::Bool(true), "{p}");
    let pos = p["playback_position"].as_f64().unwrap_or(-1.0);
    assert!(
        pos > 0.5 && pos < 1.6,
        "interrupted 1.5 s after the first frame was sent: position {pos}"
    );
    let warnings = agent.all("agents_warning");
    assert!(
        !warnings.iter().any(|w| w["message"]
            .as_str()
            .is_some_and(|m| m.contains("didn't receive playback finished"))),
        "livekit-agents had to fake the playback_finished: {warnings:?}"
    );
    agent.send("leave");
    let done = s.sup.wait_task(&task, Duration::from_secs(10), |t| {
        t["status"] == "completed"
    });
    assert_eq!(done["end_reason"], "agent_left");
}
