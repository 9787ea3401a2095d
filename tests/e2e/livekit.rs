//! End-to-end tests of `lipcast_livekit` and the worker's avatar protocol (`lipcast_worker::protocol`) through the
//! real `livekit-server` with the real engine (`liblivekit_ffi.so`) and, on the agent side, LiveKit's real
//! Python SDK (`tests/room/agent.py`); a viewer (`tests/room/viewer.py`) decodes what the avatar publishes.
//! Each test runs in its own network namespace (ICE ignores loopback).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lipcast_e2e::{Agent, LiveKitServer, ROOM_IP, TestEnv, Viewer, in_namespace};
use lipcast_livekit::{
    AudioPublishOptions, ConnectOptions, LiveKitError, Room, RpcCallError, VideoCodecChoice,
    VideoPublishOptions,
};
use lipcast_worker::protocol::types::RPC_CLEAR_BUFFER;
use lipcast_worker::protocol::{
    AUDIO_TRACK_NAME, AvatarEvent, AvatarReceiver, EndReason, PlaybackFinished, SpeechEvent,
    VIDEO_TRACK_NAME, notify,
};
use serde_json::{Value, json};

const AVATAR: &str = "lipcast-avatar";
const AGENT: &str = "agent-1";
const ROOM: &str = "e2e";
const LIMIT: Duration = Duration::from_secs(180);

fn setup() {
    let library = lipcast_worker::vendor::livekit_ffi().filter(|p| p.exists());
    let library = library.unwrap_or_else(|| {
        panic!("liblivekit_ffi.so is missing: run scripts/setup.sh (or set LIVEKIT_FFI_PATH)")
    });
    lipcast_livekit::use_library(library);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,livekit_ffi=warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Joins as the avatar does: answering `lk.clear_buffer`, its events read by the avatar protocol's receiver.
async fn join(url: &str, token: &str) -> Result<(Room, AvatarReceiver), LiveKitError> {
    let options = ConnectOptions {
        rpc_methods: vec![RPC_CLEAR_BUFFER.to_owned()],
        ..Default::default()
    };
    let (room, events) = Room::connect(url, token, options).await?;
    let receiver = AvatarReceiver::new(&room, events);
    Ok((room, receiver))
}

/// Waits up to 10 s for the agent's `event` while the receiver keeps being polled: it answers the agent's
/// RPCs only while polled, as the worker's session loop always does. Returns the event and what the receiver
/// emitted meanwhile (a session end among them fails the test).
async fn agent_answer(
    agent: &mut Agent,
    event: &str,
    events: &mut AvatarReceiver,
) -> (Value, Vec<AvatarEvent>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        if let Some(v) = agent.all(event).pop() {
            return (v, seen);
        }
        assert!(
            Instant::now() < deadline,
            "no {event} from the agent within 10 s"
        );
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(20), events.recv()).await {
            assert!(
                !matches!(ev, AvatarEvent::SessionEnded(_)),
                "session ended early: {ev:?}"
            );
            seen.push(ev);
        }
    }
}

/// Whether `seen` holds an `lk.clear_buffer` from `caller`.
fn cleared_by(seen: &[AvatarEvent], caller: &str) -> bool {
    seen.iter()
        .any(|e| matches!(e, AvatarEvent::ClearBuffer(c) if c.caller == caller))
}

// ------------------------------------------------------------------------------------------ the tests

/// Join, publish 25 fps video and audio, receive a 3 s speech segment from the real SDK agent, answer
/// `lk.clear_buffer`, send `lk.playback_finished`, and end when the agent leaves.
#[test]
fn livekit_e2e_session() {
    in_namespace("livekit_e2e_session", LIMIT, session);
}

/// Refused with a bad token, unreachable server, removed from the room, room closed.
#[test]
fn livekit_e2e_refusal_and_removal() {
    in_namespace(
        "livekit_e2e_refusal_and_removal",
        LIMIT,
        refusal_and_removal,
    );
}

fn session(env: &TestEnv) {
    setup();
    let lk = LiveKitServer::start(env);
    let url = lk.url();
    let agent_token = env.mint(AGENT, ROOM, "agent", &[]);
    let avatar_token = env.mint(AVATAR, ROOM, "agent", &[("lk.publish_on_behalf", AGENT)]);

    let mut agent = Agent::start(&url, &agent_token, AVATAR, false);
    agent.expect("connected", Duration::from_secs(15));
    let viewer = Viewer::start(env, &url, ROOM, "viewer");

    let rt = runtime();
    rt.block_on(async {
        let t = Instant::now();
        let (room, mut events) = join(&url, &avatar_token)
            .await
            .unwrap_or_else(|e| panic!("join failed: {e}"));
        let join = t.elapsed();
        println!("MEASURED join_time_ms={} (engine connect result {:?})", join.as_millis(), room.join_time());
        assert_eq!(room.local_identity(), AVATAR);
        assert_eq!(events.served_agent(), Some(AGENT), "lk.publish_on_behalf names the agent");
        assert!(room.participants_at_join().iter().any(|p| p.identity == AGENT));

        // Video first, as the worker does: through livekit-server a video track published after the audio one
        // was negotiated VP8 although H.264 was asked for.
        let t = Instant::now();
        let video = room
            .publish_video(VIDEO_TRACK_NAME, VideoPublishOptions::default())
            .await
            .unwrap_or_else(|e| panic!("publish video: {e}"));
        println!("MEASURED publish_video_ms={} codec={:?}", t.elapsed().as_millis(), video.codec());
        let audio = room
            .publish_audio(AUDIO_TRACK_NAME, AudioPublishOptions::default())
            .await
            .unwrap_or_else(|e| panic!("publish audio: {e}"));
        let video = Arc::new(video);
        let stop_pump = Arc::new(AtomicBool::new(false));
        let pump = {
            let (video, stop) = (video.clone(), stop_pump.clone());
            std::thread::spawn(move || pump_frames(&video, &stop, Duration::from_secs(40)))
        };

        agent.send("wait_track avatar_video 15");
        agent.expect("track_seen", Duration::from_secs(20));
        agent.send("send_speech 3 24000 1");
        let sent = agent.expect("speech_sent", Duration::from_secs(20));
        let sent_bytes = sent["bytes"].as_u64().unwrap_or(0);
        assert_eq!(sent_bytes, 3 * 24000 * 2);

        // Receive the segment, republish it as avatar_audio, report playback.
        let (pcm_tx, mut pcm_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<i16>>();
        let audio_task = tokio::spawn(async move {
            let mut played = 0usize;
            while let Some(samples) = pcm_rx.recv().await {
                for frame in samples.chunks(240) {
                    if audio.capture(frame).await.is_ok() {
                        played += frame.len();
                    }
                }
            }
            played
        });
        let mut received = 0usize;
        let mut carry: Option<u8> = None;
        let mut start = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ev = next_event(&mut events, deadline).await;
            match ev {
                AvatarEvent::Speech(SpeechEvent::Start(s)) => {
                    println!("segment start: {s:?}");
                    if let Err(e) = notify::playback_started(&room, AGENT).await {
                        panic!("playback_started: {e}");
                    }
                    start = Some(s);
                }
                AvatarEvent::Speech(SpeechEvent::Chunk { data, .. }) => {
                    received += data.len();
                    let mut bytes = Vec::with_capacity(data.len() + 1);
                    bytes.extend(carry.take());
                    bytes.extend_from_slice(&data);
                    if bytes.len() % 2 == 1 {
                        carry = bytes.pop();
                    }
                    let samples = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                    let _ = pcm_tx.send(samples);
                }
                AvatarEvent::Speech(SpeechEvent::End { error, .. }) => {
                    assert_eq!(error, None, "segment ended with an error");
                    break;
                }
                AvatarEvent::SessionEnded(r) => panic!("session ended early: {r:?}"),
                other => println!("room event: {other:?}"),
            }
        }
        let start = start.unwrap_or_else(|| panic!("no segment start"));
        println!("MEASURED segment bytes={received} sender={} attrs={:?}", start.sender, start.attributes);
        assert_eq!(received as u64, sent_bytes, "exact byte count");
        assert_eq!(start.sender, AGENT);
        assert_eq!((start.sample_rate, start.num_channels), (24000, 1));
        assert_eq!(start.attributes.get("sample_rate").map(String::as_str), Some("24000"));
        assert_eq!(start.attributes.get("num_channels").map(String::as_str), Some("1"));
        let position = received as f64 / 2.0 / 24000.0;
        notify::playback_finished(&room, AGENT, PlaybackFinished::new(position, false))
            .await
            .unwrap_or_else(|e| panic!("playback_finished: {e}"));
        let rpc = agent.expect_where("rpc", Duration::from_secs(10), |v| v["method"] == "lk.playback_finished");
        assert_eq!(
            rpc["payload"].as_str(),
            Some(r#"{"playback_position": 3.0, "interrupted": false, "synchronized_transcript": null}"#)
        );
        assert_eq!(rpc["caller"].as_str(), Some(AVATAR));
        let valid = agent.expect("playback_finished_valid", Duration::from_secs(5));
        assert_eq!(valid["valid"], Value::Bool(true));
        let started = agent.all("rpc").into_iter().find(|v| v["method"] == "lk.playback_started");
        assert_eq!(started.map(|v| v["payload"].clone()), Some(Value::String(String::new())));

        // lk.clear_buffer from the served agent is answered "ok" and surfaced.
        agent.send("clear_buffer");
        let (cb, seen) = agent_answer(&mut agent, "clear_buffer_result", &mut events).await;
        assert_eq!(cb["payload"].as_str(), Some("ok"), "clear_buffer answer: {cb}");
        let mut cleared = cleared_by(&seen, AGENT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cleared {
            match next_event(&mut events, deadline).await {
                AvatarEvent::ClearBuffer(c) => {
                    assert_eq!(c.caller, AGENT);
                    cleared = true;
                }
                AvatarEvent::SessionEnded(r) => panic!("session ended early: {r:?}"),
                _ => {}
            }
        }
        // Keep publishing until 15 s of video went out, then the agent leaves.
        while pump_elapsed(&video) < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(pcm_tx);
        let played = audio_task.await.unwrap_or(0);
        println!("MEASURED republished_audio_samples={played}");
        agent.send("leave");
        let t = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(10);
        let end = loop {
            if let AvatarEvent::SessionEnded(r) = next_event(&mut events, deadline).await {
                break r;
            }
        };
        println!("MEASURED agent_leave_to_end_ms={}", t.elapsed().as_millis());
        assert!(matches!(&end, EndReason::AgentLeft { identity, .. } if identity == AGENT), "{end:?}");
        stop_pump.store(true, Ordering::SeqCst);
        let pushed = pump.join().unwrap_or(0);
        println!("MEASURED frames_pushed={pushed}");
        drop(video);
        room.disconnect().await.unwrap_or_else(|e| panic!("disconnect: {e}"));
    });
    drop(agent);
    check_video_report(&viewer.stop_and_report());
}

fn refusal_and_removal(env: &TestEnv) {
    setup();
    let lk = LiveKitServer::start(env);
    let url = lk.url();
    let mut viewer = None;
    let rt = runtime();
    rt.block_on(async {
        // Wrong signature: a clear Unauthorized error, quickly.
        let bad = lipcast_e2e::token::mint("not-the-secret", AVATAR, ROOM, "agent", &[]);
        let t = Instant::now();
        let err = Room::connect(&url, &bad, ConnectOptions::default())
            .await
            .err();
        println!(
            "MEASURED refused_in_ms={} error={err:?}",
            t.elapsed().as_millis()
        );
        assert!(
            matches!(err, Some(LiveKitError::Unauthorized(_))),
            "bad token must be Unauthorized: {err:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));

        // Nothing listening: Unreachable (or a timeout), never a hang.
        let opts = ConnectOptions {
            timeout: Duration::from_secs(3),
            ..Default::default()
        };
        let t = Instant::now();
        let err = Room::connect(&format!("ws://{ROOM_IP}:7999"), &bad, opts)
            .await
            .err();
        println!(
            "MEASURED unreachable_in_ms={} error={err:?}",
            t.elapsed().as_millis()
        );
        assert!(
            matches!(
                err,
                Some(LiveKitError::Unreachable(_) | LiveKitError::Timeout { .. })
            ),
            "unreachable server: {err:?}"
        );

        // No lk.publish_on_behalf: the avatar serves the first AGENT participant; others are refused.
        let token = env.mint(AVATAR, ROOM, "agent", &[]);
        let mut agent = Agent::start(&url, &env.mint(AGENT, ROOM, "agent", &[]), AVATAR, false);
        agent.expect("connected", Duration::from_secs(15));
        viewer = Some(Viewer::start(env, &url, ROOM, "viewer"));
        let (room, mut events) = join(&url, &token)
            .await
            .unwrap_or_else(|e| panic!("join failed: {e}"));
        assert_eq!(events.served_agent(), Some(AGENT), "first agent is served");
        let mut other = Agent::start(&url, &env.mint("agent-2", ROOM, "agent", &[]), AVATAR, true);
        other.expect("connected", Duration::from_secs(15));
        other.send("clear_buffer");
        let (cb, mut seen) = agent_answer(&mut other, "clear_buffer_result", &mut events).await;
        assert_eq!(
            cb["payload"],
            Value::Null,
            "a stranger's clear_buffer must fail: {cb}"
        );
        assert_eq!(cb["error"]["code"].as_u64(), Some(1500));
        agent.send("clear_buffer");
        let (cb, more) = agent_answer(&mut agent, "clear_buffer_result", &mut events).await;
        seen.extend(more);
        assert_eq!(cb["payload"].as_str(), Some("ok"));
        // Calling a method the callee did not register is RPC error 1400 (agent-2 lacks lk.playback_started);
        // `playback_started` tolerates it, and succeeds against the served agent.
        match room
            .perform_rpc("agent-2", "lk.playback_started", "", Duration::from_secs(5))
            .await
        {
            Err(RpcCallError::Remote { code: 1400, .. }) => {}
            res => {
                panic!("expected RPC error 1400 from an agent without lk.playback_started: {res:?}")
            }
        }
        notify::playback_started(&room, "agent-2")
            .await
            .unwrap_or_else(|e| panic!("playback_started must tolerate 1400: {e}"));
        notify::playback_started(&room, AGENT)
            .await
            .unwrap_or_else(|e| panic!("playback_started: {e}"));
        other.send("leave");
        other.expect("left", Duration::from_secs(10));
        let mut cleared = cleared_by(&seen, AGENT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cleared {
            match next_event(&mut events, deadline).await {
                AvatarEvent::ClearBuffer(c) => cleared = c.caller == AGENT,
                AvatarEvent::SessionEnded(r) => panic!("ended early: {r:?}"),
                _ => {}
            }
        }

        // Streams: other topics are dropped unseen, missing attributes reject the stream, and consecutive
        // segments arrive in order with their exact sizes.
        agent.send("send_stream lk.transcription 1000 {}");
        agent.expect("stream_sent", Duration::from_secs(10));
        agent.send(r#"send_stream lk.audio_stream 4800 {"sample_rate":"16000"}"#);
        agent.expect("stream_sent", Duration::from_secs(10));
        agent.send("send_speech 0.5 16000 1");
        agent.expect("speech_sent", Duration::from_secs(10));
        agent.send("send_speech 0.25 48000 2");
        agent.expect("speech_sent", Duration::from_secs(10));
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ends = 0;
        let mut bytes = 0usize;
        while ends < 2 {
            match next_event(&mut events, deadline).await {
                AvatarEvent::Speech(SpeechEvent::Rejected { reason, sender, .. }) => {
                    assert_eq!(sender, AGENT);
                    seen.push(format!("rejected: {reason}"));
                }
                AvatarEvent::Speech(SpeechEvent::Start(s)) => {
                    seen.push(format!("start {} {}", s.sample_rate, s.num_channels))
                }
                AvatarEvent::Speech(SpeechEvent::Chunk { data, .. }) => bytes += data.len(),
                AvatarEvent::Speech(SpeechEvent::End { error, .. }) => {
                    assert_eq!(error, None);
                    seen.push(format!("end {bytes}"));
                    bytes = 0;
                    ends += 1;
                }
                AvatarEvent::SessionEnded(r) => panic!("ended early: {r:?}"),
                _ => {}
            }
        }
        println!("stream events: {seen:?}");
        assert_eq!(
            seen,
            [
                "rejected: missing num_channels attribute",
                "start 16000 1",
                "end 16000",
                "start 48000 2",
                "end 48000",
            ]
        );

        // VP8 and RGBA frames work too.
        let opts = VideoPublishOptions {
            width: 320,
            height: 240,
            codec: VideoCodecChoice::Vp8,
            ..Default::default()
        };
        let video = room
            .publish_video(VIDEO_TRACK_NAME, opts)
            .await
            .unwrap_or_else(|e| panic!("publish VP8: {e}"));
        assert_eq!(video.codec(), VideoCodecChoice::Vp8);
        let mut rgba = vec![0u8; 320 * 240 * 4];
        let t0 = Instant::now();
        for n in 0..50u8 {
            for px in rgba.chunks_exact_mut(4) {
                px.copy_from_slice(&[n.wrapping_mul(5), 0, 255 - n, 255]);
            }
            video
                .capture_rgba(&rgba, i64::from(n) * 40_000)
                .unwrap_or_else(|e| panic!("capture_rgba: {e}"));
            tokio::time::sleep_until((t0 + Duration::from_millis(40 * (u64::from(n) + 1))).into())
                .await;
        }
        assert!(matches!(
            video.capture_rgba(&rgba[..16], 0),
            Err(LiveKitError::InvalidFrame(_))
        ));
        drop(video);

        // Removed from the room (RoomService RemoveParticipant).
        room_service(
            &lk,
            "RemoveParticipant",
            json!({"room": ROOM, "identity": AVATAR}),
        );
        let end = wait_end(&mut events, Duration::from_secs(10)).await;
        assert_eq!(end, EndReason::Removed);
        drop(room);
        agent.send("leave");
        agent.expect("left", Duration::from_secs(10));
        drop(agent);

        // The room closes.
        let (room, mut events) = join(&url, &token)
            .await
            .unwrap_or_else(|e| panic!("second join failed: {e}"));
        room_service(&lk, "DeleteRoom", json!({"room": ROOM}));
        let end = wait_end(&mut events, Duration::from_secs(10)).await;
        assert_eq!(end, EndReason::RoomClosed);
        drop(room);
    });
    let report = viewer
        .unwrap_or_else(|| panic!("no viewer"))
        .stop_and_report();
    let first = report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["identity"] == AVATAR))
        .unwrap_or_else(|| panic!("the viewer never saw the avatar"));
    let video = &first["video"][0];
    println!(
        "MEASURED vp8/rgba frames={} size={}x{} codecs={} leave={}",
        video["frames"], video["width"], video["height"], video["codecs"], first["leave"]
    );
    assert!(
        video["frames"].as_u64().unwrap_or(0) >= 25,
        "VP8 frames: {}",
        video["frames"]
    );
    assert_eq!(video["codecs"][0].as_str(), Some("video/VP8"));
    assert_eq!(first["leave"].as_str(), Some("PARTICIPANT_REMOVED"));
}

// ------------------------------------------------------------------------------------------ checks

/// The server's room service API from async code (the call blocks: it runs on a thread of its own).
fn room_service(lk: &LiveKitServer, method: &str, body: Value) {
    std::thread::scope(|s| {
        s.spawn(|| lk.room_service(method, ROOM, &body))
            .join()
            .unwrap_or_else(|_| panic!("{method} failed"));
    });
}

/// How far the delivered frame rate may stray from 25 (CONVENTIONS.md, "Timing").
const FPS_TOLERANCE: f64 = 1.0;

fn check_video_report(report: &Value) {
    let avatar = report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["identity"] == AVATAR))
        .unwrap_or_else(|| panic!("the viewer never saw the avatar"));
    let names = |kind: &str| -> Vec<&str> {
        avatar[kind]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default()
    };
    let tracks = [names("video"), names("audio")].concat();
    assert!(
        tracks.contains(&"avatar_video") && tracks.contains(&"avatar_audio"),
        "tracks {tracks:?}"
    );
    let video = &avatar["video"][0];
    let arrivals: Vec<(f64, i64)> = video["arrivals"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| (x[0].as_f64().unwrap_or(0.0), x[1].as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        arrivals.len() > 250,
        "too few frames decoded: {}",
        arrivals.len()
    );
    let first = arrivals[0].0;
    // 10 s window starting 3 s after the first frame: OpenH264's rate control skips a few frames after the
    // first key frames of this high-contrast pattern (seen deterministically at frames 1-56, i.e. < 2.5 s).
    let (w0, w1) = (first + 3.0, first + 13.0);
    let in_window: Vec<&(f64, i64)> = arrivals
        .iter()
        .filter(|(t, _)| *t >= w0 && *t < w1)
        .collect();
    let fps_arrival = in_window.len() as f64 / 10.0;
    let (p0, p1) = (
        in_window.first().map_or(0, |x| x.1),
        in_window.last().map_or(0, |x| x.1),
    );
    // The frames' timestamps (µs) as the receiving engine hands them out: they follow the sender's RTP clock.
    let fps_rtp = (in_window.len().saturating_sub(1)) as f64 / ((p1 - p0) as f64 / 1e6);
    println!(
        "MEASURED received frames={} size={}x{} codecs={} fps_10s_arrival={fps_arrival:.2} fps_10s_timestamps={fps_rtp:.2}",
        arrivals.len(),
        video["width"],
        video["height"],
        video["codecs"],
    );
    // CONVENTIONS.md "Timing": 25 FPS within +-1 on a loaded 2-core machine, where the receiving engine's
    // queue and OpenH264's rate control each drop a frame now and then (CI once measured 24.40).
    assert!(
        (fps_arrival - 25.0).abs() <= FPS_TOLERANCE,
        "received {fps_arrival:.2} fps over 10 s (want 25 +- {FPS_TOLERANCE})"
    );
    assert!(
        (fps_rtp - 25.0).abs() <= FPS_TOLERANCE,
        "the frames' timestamps say {fps_rtp:.2} fps"
    );
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(512), Some(512))
    );
    assert_eq!(
        video["codecs"],
        json!(["video/H264"]),
        "the codec asked for (H.264) is the one the viewer decodes"
    );
    // Content: the test pattern's top-left block is red.
    let samples = video["samples"].as_array().cloned().unwrap_or_default();
    assert!(!samples.is_empty());
    for s in &samples {
        let tl = &s["top_left_rgb"];
        let (r, g) = (
            tl[0].as_f64().unwrap_or(0.0),
            tl[1].as_f64().unwrap_or(255.0),
        );
        assert!(
            r > 150.0 && g < 100.0,
            "top-left block not red in frame {}: {tl}",
            s["frame"]
        );
    }
    let pngs = video["pngs"].as_array().map_or(0, Vec::len);
    assert!(pngs >= 2, "saved frames: {pngs}");
    let audio = &avatar["audio"][0];
    println!(
        "MEASURED viewer recorded avatar_audio samples={} rate={} peak={}",
        audio["samples"], audio["sample_rate"], audio["peak"]
    );
    assert!(
        audio["samples"].as_u64().unwrap_or(0) > 48_000,
        "avatar_audio not received"
    );
    assert!(
        audio["peak"].as_u64().unwrap_or(0) > 1000,
        "avatar_audio is silent"
    );
}

// ------------------------------------------------------------------------------------------ video pattern

static PUMP_START: Mutex<Option<Instant>> = Mutex::new(None);

fn pump_elapsed(_: &lipcast_livekit::VideoTrack) -> Duration {
    PUMP_START
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map_or(Duration::ZERO, |s| s.elapsed())
}

/// 25 fps I420 test pattern: moving diagonal luma bars, a red top-left block. Returns frames pushed.
fn pump_frames(video: &lipcast_livekit::VideoTrack, stop: &AtomicBool, max: Duration) -> u64 {
    let (w, h) = video.size();
    let (w, h) = (w as usize, h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut buf = vec![0u8; w * h + 2 * cw * ch];
    // Diagonal bars 16 px wide: a row is this line shifted by (row + frame * 4).
    let bars: Vec<u8> = (0..w + 32)
        .map(|i| if (i / 16) % 2 == 0 { 40 } else { 200 })
        .collect();
    let start = Instant::now();
    *PUMP_START.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) && start.elapsed() < max {
        let shift = (n * 4) as usize;
        let (y, uv) = buf.split_at_mut(w * h);
        for (row, line) in y.chunks_exact_mut(w).enumerate() {
            let off = (row + shift) % 32;
            line.copy_from_slice(&bars[off..off + w]);
            if row < 32 {
                line[..32].fill(81);
            }
        }
        let (u, v) = uv.split_at_mut(cw * ch);
        for row in 0..ch {
            for col in 0..cw {
                let red = row < 16 && col < 16;
                u[row * cw + col] = if red { 90 } else { 128 };
                v[row * cw + col] = if red { 240 } else { 128 };
            }
        }
        let ts = (n as i64) * 40_000;
        if let Err(e) = video.capture_i420(&buf, ts) {
            eprintln!("capture failed: {e}");
        }
        n += 1;
        let next = start + Duration::from_millis(40 * n);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    n
}

// ------------------------------------------------------------------------------------------ helpers

async fn next_event(events: &mut AvatarReceiver, deadline: Instant) -> AvatarEvent {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, events.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("room event stream closed"),
        Err(_) => panic!("timed out waiting for a room event"),
    }
}

async fn wait_end(events: &mut AvatarReceiver, within: Duration) -> EndReason {
    let deadline = Instant::now() + within;
    loop {
        if let AvatarEvent::SessionEnded(r) = next_event(events, deadline).await {
            return r;
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}
