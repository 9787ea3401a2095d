//! The playout queue: speech segments in arrival order, consumed one video frame (40 ms) at a time.
//!
//! Each segment holds its audio twice: at the published track's rate (what the room hears) and at 16 kHz
//! (what the animator reads). Only the segment at the front is fed to the animator, so the mouth always
//! follows the audio being played. A segment starts once it has [`PlayoutConfig::start_frames`] frames of
//! audio and the animator can render its first frame (or its input ended); that is the look-ahead this
//! stage adds. Running dry mid-segment plays silence and an idle frame until [`PlayoutConfig::resume_frames`]
//! are buffered again; from then on the session buffers that much before each segment (an adaptive jitter
//! buffer: agents whose TTS streams faster than real time never pay for it).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::animation::Animator;

#[derive(Debug, Clone, Copy)]
pub struct PlayoutConfig {
    /// Sample rate of the published audio track.
    pub out_rate: u32,
    /// Video frames per second (one audio frame per video frame).
    pub fps: u32,
    /// Frames of audio a segment must hold before it starts (unless its input already ended).
    pub start_frames: usize,
    /// Frames of audio a segment that ran dry must hold before it resumes. Once a segment ran dry the sender is
    /// known to stream at about real time, and later segments start with this much too.
    pub resume_frames: usize,
}

impl PlayoutConfig {
    /// Track samples per video frame.
    pub fn frame_samples(&self) -> usize {
        (self.out_rate / self.fps.max(1)) as usize
    }
}

/// A segment ended: played out, or interrupted by `lk.clear_buffer`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finished {
    pub segment: u64,
    /// Seconds of the segment's audio actually played.
    pub position_s: f64,
    pub interrupted: bool,
    /// Frames of silence played mid-segment because its audio ran dry.
    pub stalled_frames: u32,
}

/// The first frame of a segment is being played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub segment: u64,
    pub sample_rate: u32,
    pub channels: u32,
}

/// What to play in this frame.
#[derive(Debug, PartialEq)]
pub enum Tick {
    /// Nothing to play: an idle frame and silence.
    Idle,
    /// One frame of speech (`audio` is exactly one frame at the track rate; a segment's last frame is
    /// padded with silence).
    Speech {
        audio: Vec<i16>,
        /// Set on the segment's first frame.
        started: Option<Started>,
        /// Audio arrival -> this frame, for the first frame of a segment or after running dry.
        latency: Option<Duration>,
    },
}

struct Segment {
    id: u64,
    stream_id: String,
    sample_rate: u32,
    channels: u32,
    out: VecDeque<i16>,
    /// 16 kHz audio not handed to the animator yet.
    feat: Vec<f32>,
    /// (index of the chunk's first track sample within the segment, arrival time).
    arrivals: VecDeque<(u64, Instant)>,
    received: u64,
    played: u64,
    input_ended: bool,
    flushed: bool,
    fed: bool,
    started: bool,
    /// Ran dry mid-segment; the next frame measures latency again.
    stalled: bool,
    stalled_frames: u32,
}

pub struct Playout {
    cfg: PlayoutConfig,
    /// Frames a new segment needs before it starts (grows to `resume_frames` after a stall).
    start_frames: usize,
    segments: VecDeque<Segment>,
    next_id: u64,
    /// Streams interrupted by a clear: the rest of their audio is dropped.
    cleared: HashSet<String>,
}

impl Playout {
    pub fn new(cfg: PlayoutConfig) -> Self {
        Self {
            cfg,
            start_frames: cfg.start_frames,
            segments: VecDeque::new(),
            next_id: 1,
            cleared: HashSet::new(),
        }
    }

    pub fn config(&self) -> PlayoutConfig {
        self.cfg
    }

    /// A new segment (byte stream) begins; it plays after those before it. Returns its number.
    pub fn start(&mut self, stream_id: &str, sample_rate: u32, channels: u32) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.segments.push_back(Segment {
            id,
            stream_id: stream_id.to_owned(),
            sample_rate,
            channels,
            out: VecDeque::new(),
            feat: Vec::new(),
            arrivals: VecDeque::new(),
            received: 0,
            played: 0,
            input_ended: false,
            flushed: false,
            fed: false,
            started: false,
            stalled: false,
            stalled_frames: 0,
        });
        id
    }

    fn segment_mut(&mut self, stream_id: &str) -> Option<&mut Segment> {
        self.segments
            .iter_mut()
            .rev()
            .find(|s| s.stream_id == stream_id && !s.input_ended)
    }

    /// Audio of segment `stream_id`: `out` at the track rate, `feat` at 16 kHz.
    pub fn push(&mut self, stream_id: &str, out: &[i16], feat: &[f32], arrived: Instant) {
        if self.cleared.contains(stream_id) {
            return;
        }
        let Some(seg) = self.segment_mut(stream_id) else {
            return;
        };
        if !out.is_empty() {
            seg.arrivals.push_back((seg.received, arrived));
        }
        seg.out.extend(out.iter().copied());
        seg.received += out.len() as u64;
        seg.feat.extend_from_slice(feat);
    }

    /// Segment `stream_id` has no more audio.
    pub fn end(&mut self, stream_id: &str) {
        self.cleared.remove(stream_id);
        if let Some(seg) = self.segment_mut(stream_id) {
            seg.input_ended = true;
        }
    }

    /// `lk.clear_buffer`: drops every queued segment at once. Returns the interrupted segment (the one at the
    /// front, with the position actually played), if any.
    pub fn clear(&mut self, animator: &mut dyn Animator) -> Option<Finished> {
        let rate = f64::from(self.cfg.out_rate.max(1));
        let front = self.segments.front().map(|s| Finished {
            segment: s.id,
            position_s: s.played as f64 / rate,
            interrupted: true,
            stalled_frames: s.stalled_frames,
        });
        for s in &self.segments {
            if !s.input_ended {
                self.cleared.insert(s.stream_id.clone());
            }
        }
        // Bounded: a stream's entry goes when its trailer arrives; keep the set from growing without one.
        if self.cleared.len() > 64 {
            self.cleared.clear();
        }
        self.segments.clear();
        animator.reset();
        front
    }

    /// True when a segment is being played or waits to be.
    pub fn busy(&self) -> bool {
        !self.segments.is_empty()
    }

    /// Decides the next frame. Also returns the segments that finished playing before it.
    pub fn next(&mut self, animator: &mut dyn Animator, now: Instant) -> (Tick, Vec<Finished>) {
        let frame = self.cfg.frame_samples();
        let rate = f64::from(self.cfg.out_rate.max(1));
        let mut finished = Vec::new();
        loop {
            let Some(seg) = self.segments.front_mut() else {
                return (Tick::Idle, finished);
            };
            if !seg.fed {
                animator.reset();
                seg.fed = true;
            }
            if !seg.feat.is_empty() {
                animator.push_audio(&seg.feat);
                seg.feat.clear();
            }
            if seg.input_ended && !seg.flushed {
                animator.end_of_audio();
                seg.flushed = true;
            }
            let available = seg.out.len();
            if available == 0 && seg.input_ended {
                if seg.started {
                    finished.push(Finished {
                        segment: seg.id,
                        position_s: seg.played as f64 / rate,
                        interrupted: false,
                        stalled_frames: seg.stalled_frames,
                    });
                }
                self.segments.pop_front();
                continue;
            }
            let can_render =
                animator.ready() > 0 || (seg.input_ended && !animator.waits_for_model());
            let needed = if !seg.started {
                self.start_frames
            } else if seg.stalled {
                self.cfg.resume_frames
            } else {
                1
            };
            if !(seg.input_ended || available >= needed * frame) || !can_render {
                if seg.started {
                    seg.stalled = true;
                    seg.stalled_frames += 1;
                    self.start_frames = self.start_frames.max(self.cfg.resume_frames);
                }
                return (Tick::Idle, finished);
            }
            let take = available.min(frame);
            let mut audio: Vec<i16> = seg.out.drain(..take).collect();
            audio.resize(frame, 0);
            let first_sample = seg.played;
            seg.played += take as u64;
            let started = (!seg.started).then_some(Started {
                segment: seg.id,
                sample_rate: seg.sample_rate,
                channels: seg.channels,
            });
            while seg.arrivals.len() > 1 && seg.arrivals[1].0 <= first_sample {
                seg.arrivals.pop_front();
            }
            // A segment's start counts from the arrival of its first audio; a resumption after running dry
            // from the arrival of the audio that let it resume.
            let arrival = if !seg.started {
                seg.arrivals.front()
            } else if seg.stalled {
                seg.arrivals.back()
            } else {
                None
            };
            let latency = arrival.map(|(_, t)| now.saturating_duration_since(*t));
            seg.started = true;
            seg.stalled = false;
            return (
                Tick::Speech {
                    audio,
                    started,
                    latency,
                },
                finished,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avatar::Frame;

    /// An animator that is ready for as many frames as 640-sample blocks were pushed (plus the tail on end).
    #[derive(Default)]
    struct CountingAnimator {
        pushed: usize,
        popped: usize,
        ended: bool,
        resets: usize,
        frame: Option<Frame>,
    }

    impl Animator for CountingAnimator {
        fn size(&self) -> (u32, u32) {
            (2, 2)
        }
        fn push_audio(&mut self, pcm: &[f32]) {
            self.pushed += pcm.len();
        }
        fn end_of_audio(&mut self) {
            self.ended = true;
        }
        fn ready(&self) -> usize {
            let frames = if self.ended {
                self.pushed.div_ceil(640)
            } else {
                self.pushed / 640
            };
            frames.saturating_sub(self.popped)
        }
        fn speech_frame(&mut self, _: u64) -> &Frame {
            self.popped += 1;
            self.frame.get_or_insert(Frame {
                width: 2,
                height: 2,
                rgba: vec![0; 16],
            })
        }
        fn idle_frame(&mut self, _: u64) -> &Frame {
            self.frame.get_or_insert(Frame {
                width: 2,
                height: 2,
                rgba: vec![0; 16],
            })
        }
        fn reset(&mut self) {
            self.resets += 1;
            (self.pushed, self.popped, self.ended) = (0, 0, false);
        }
        fn lookahead_ms(&self) -> f32 {
            0.0
        }
    }

    const CFG: PlayoutConfig = PlayoutConfig {
        out_rate: 24_000,
        fps: 25,
        start_frames: 2,
        resume_frames: 5,
    };

    fn push_ms(p: &mut Playout, stream: &str, ms: usize, t: Instant) {
        let out = vec![100i16; 24 * ms];
        let feat = vec![0.1f32; 16 * ms];
        p.push(stream, &out, &feat, t);
    }

    /// Drives the loop's contract: speech frames consume the animator's frames.
    fn step(p: &mut Playout, a: &mut CountingAnimator, t: Instant) -> (Tick, Vec<Finished>) {
        let (tick, fin) = p.next(a, t);
        if matches!(tick, Tick::Speech { .. }) && a.ready() > 0 {
            a.speech_frame(0);
        }
        (tick, fin)
    }

    #[test]
    fn a_segment_plays_in_whole_frames_and_reports_its_length() {
        let t0 = Instant::now();
        let mut p = Playout::new(CFG);
        let mut a = CountingAnimator::default();
        p.start("s1", 24_000, 1);
        push_ms(&mut p, "s1", 1_010, t0);
        p.end("s1");
        let mut speech = 0;
        let mut done = Vec::new();
        for _ in 0..40 {
            let (tick, fin) = step(&mut p, &mut a, t0 + Duration::from_millis(30));
            if let Tick::Speech {
                audio,
                started,
                latency,
            } = tick
            {
                assert_eq!(audio.len(), 960);
                if speech == 0 {
                    assert_eq!(started.map(|s| s.segment), Some(1));
                    assert_eq!(latency, Some(Duration::from_millis(30)));
                } else {
                    assert!(started.is_none() && latency.is_none());
                }
                speech += 1;
            }
            done.extend(fin);
        }
        assert_eq!(speech, 26, "1010 ms = 25 frames + a padded one");
        assert_eq!(done.len(), 1);
        assert!((done[0].position_s - 1.01).abs() < 1e-9, "{:?}", done[0]);
        assert!(!done[0].interrupted);
        assert!(!p.busy());
    }

    #[test]
    fn waits_for_the_start_buffer_then_runs_dry_with_silence() {
        let t0 = Instant::now();
        let mut p = Playout::new(CFG);
        let mut a = CountingAnimator::default();
        p.start("s1", 24_000, 1);
        push_ms(&mut p, "s1", 40, t0);
        assert_eq!(
            step(&mut p, &mut a, t0).0,
            Tick::Idle,
            "one frame is not enough to start"
        );
        push_ms(&mut p, "s1", 60, t0);
        assert!(matches!(step(&mut p, &mut a, t0).0, Tick::Speech { .. }));
        assert!(matches!(step(&mut p, &mut a, t0).0, Tick::Speech { .. }));
        // 20 ms left and the stream is still open: run dry.
        assert_eq!(step(&mut p, &mut a, t0).0, Tick::Idle);
        let later = t0 + Duration::from_millis(500);
        push_ms(&mut p, "s1", 100, later);
        assert_eq!(
            step(&mut p, &mut a, later).0,
            Tick::Idle,
            "120 ms buffered; resuming needs 200 ms"
        );
        push_ms(&mut p, "s1", 100, later);
        match step(&mut p, &mut a, later + Duration::from_millis(5)).0 {
            Tick::Speech { latency, .. } => {
                assert_eq!(
                    latency,
                    Some(Duration::from_millis(5)),
                    "latency after running dry"
                )
            }
            other => panic!("expected speech, got {other:?}"),
        }
        // The session learnt the sender is slow: the next segment waits for 200 ms too.
        p.end("s1");
        while p.busy() {
            step(&mut p, &mut a, later);
        }
        p.start("s2", 24_000, 1);
        push_ms(&mut p, "s2", 120, later);
        assert_eq!(step(&mut p, &mut a, later).0, Tick::Idle);
        push_ms(&mut p, "s2", 100, later);
        assert!(matches!(step(&mut p, &mut a, later).0, Tick::Speech { .. }));
    }

    #[test]
    fn clear_interrupts_at_the_played_position_and_drops_the_rest_of_the_stream() {
        let t0 = Instant::now();
        let mut p = Playout::new(CFG);
        let mut a = CountingAnimator::default();
        p.start("s1", 24_000, 1);
        push_ms(&mut p, "s1", 2_000, t0);
        p.start("s2", 24_000, 1);
        push_ms(&mut p, "s2", 500, t0);
        p.end("s2");
        for _ in 0..10 {
            step(&mut p, &mut a, t0);
        }
        let fin = p.clear(&mut a).expect("interrupted segment");
        assert_eq!(fin.segment, 1);
        assert!(fin.interrupted);
        assert!((fin.position_s - 0.4).abs() < 1e-9, "{fin:?}");
        assert!(!p.busy());
        assert_eq!(step(&mut p, &mut a, t0).0, Tick::Idle);
        // The rest of s1 is dropped; a new stream plays.
        push_ms(&mut p, "s1", 500, t0);
        assert!(!p.busy());
        p.end("s1");
        p.start("s3", 24_000, 1);
        push_ms(&mut p, "s3", 100, t0);
        p.end("s3");
        assert!(matches!(
            step(&mut p, &mut a, t0).0,
            Tick::Speech {
                started: Some(Started { segment: 3, .. }),
                ..
            }
        ));
        assert!(p.clear(&mut a).is_some());
        assert!(p.clear(&mut a).is_none(), "nothing left to interrupt");
    }

    #[test]
    fn segments_play_back_to_back_in_order() {
        let t0 = Instant::now();
        let mut p = Playout::new(CFG);
        let mut a = CountingAnimator::default();
        p.start("a", 24_000, 1);
        push_ms(&mut p, "a", 80, t0);
        p.end("a");
        p.start("b", 24_000, 1);
        push_ms(&mut p, "b", 80, t0);
        p.end("b");
        let mut order = Vec::new();
        for _ in 0..6 {
            // The loop reports finished segments before the frame it is about to play.
            let (tick, fin) = step(&mut p, &mut a, t0);
            for f in fin {
                order.push(format!("end {} {:.2}", f.segment, f.position_s));
            }
            if let Tick::Speech {
                started: Some(s), ..
            } = tick
            {
                order.push(format!("start {}", s.segment));
            }
        }
        assert_eq!(order, ["start 1", "end 1 0.08", "start 2", "end 2 0.08"]);
        assert!(a.resets >= 2, "the animator restarts for each segment");
    }
}
