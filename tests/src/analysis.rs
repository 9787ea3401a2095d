//! Reading what the test room recorded: the per-frame luma grids of received video, the received audio (WAV
//! plus arrival times), and the timing figures tests assert on.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// Side of the room's block-mean luma grid.
pub const GRID: usize = 32;

/// One received video frame: arrival time (room clock, s), RTP timestamp and its luma grid.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub at: f64,
    pub rtp: u64,
    pub grid: Vec<u8>,
}

/// The received video of a participant's track `index`.
pub fn video_frames(participant: &Value, index: usize) -> Vec<VideoFrame> {
    let v = &participant["video"][index];
    let arrivals = v["arrivals"].as_array().cloned().unwrap_or_default();
    let grids = v["grid"].as_array().cloned().unwrap_or_default();
    arrivals
        .iter()
        .zip(grids.iter())
        .filter_map(|(a, g)| {
            Some(VideoFrame {
                at: a[0].as_f64()?,
                rtp: a[1].as_u64().unwrap_or(0),
                grid: STANDARD.decode(g.as_str()?).ok()?,
            })
        })
        .filter(|f| f.grid.len() == GRID * GRID)
        .collect()
}

/// Mean absolute luma difference between two grids over the cells around (`cx`, `cy`) (normalised 0..1
/// coordinates), `radius` cells each way.
pub fn region_diff(a: &[u8], b: &[u8], cx: f64, cy: f64, radius: usize) -> f64 {
    let (gx, gy) = ((cx * GRID as f64) as usize, (cy * GRID as f64) as usize);
    let (mut sum, mut n) = (0.0, 0.0);
    for y in gy.saturating_sub(radius)..=(gy + radius).min(GRID - 1) {
        for x in gx.saturating_sub(radius)..=(gx + radius).min(GRID - 1) {
            let i = y * GRID + x;
            sum += (f64::from(a[i]) - f64::from(b[i])).abs();
            n += 1.0;
        }
    }
    if n > 0.0 { sum / n } else { 0.0 }
}

/// Frame rate and the longest gap over frames arriving within [`from`, `to`] (room clock).
pub fn fps_and_max_gap(frames: &[VideoFrame], from: f64, to: f64) -> (f64, f64) {
    let ts: Vec<f64> = frames
        .iter()
        .map(|f| f.at)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    if ts.len() < 2 {
        return (0.0, f64::INFINITY);
    }
    let span = ts[ts.len() - 1] - ts[0];
    let gap = ts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    ((ts.len() - 1) as f64 / span, gap)
}

/// A WAV file as (rate, channels, samples).
pub fn read_wav(path: &str) -> (u32, u16, Vec<i16>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        b.len() > 44 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{path} is not a WAV file"
    );
    let mut i = 12;
    let (mut rate, mut channels) = (0u32, 0u16);
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let size = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        if id == b"fmt " {
            channels = u16::from_le_bytes([b[i + 10], b[i + 11]]);
            rate = u32::from_le_bytes([b[i + 12], b[i + 13], b[i + 14], b[i + 15]]);
        } else if id == b"data" {
            let end = (i + 8 + size).min(b.len());
            let data = if size == 0 || size == u32::MAX as usize {
                &b[i + 8..]
            } else {
                &b[i + 8..end]
            };
            let samples = data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate, channels, samples);
        }
        i += 8 + size + (size & 1);
    }
    panic!("{path}: no data chunk");
}

/// Writes mono 16-bit PCM as a WAV file.
pub fn write_wav(path: &std::path::Path, rate: u32, samples: &[i16]) {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Speech from espeak-ng at its native 22.05 kHz, mono int16, written to `path`.
pub fn espeak(text: &str, path: &std::path::Path) -> (u32, Vec<i16>) {
    let out = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(path)
        .arg(text)
        .output()
        .unwrap_or_else(|e| {
            panic!("espeak-ng must be installed (scripts/test.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "espeak-ng failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rate, _, samples) = read_wav(&path.display().to_string());
    (rate, samples)
}

/// RMS envelope in windows of `win` samples.
pub fn envelope(samples: &[i16], win: usize) -> Vec<f64> {
    samples
        .chunks(win.max(1))
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// The received audio of a participant's track `index`.
pub struct ReceivedAudio {
    pub rate: u32,
    /// Mono samples, as decoded by the room.
    pub samples: Vec<i16>,
    /// Per decoded frame: (room arrival time, index of its first sample, sample count, RTP timestamp).
    pub frames: Vec<(f64, u64, u64, u64)>,
}

pub fn received_audio(participant: &Value, index: usize) -> ReceivedAudio {
    let a = &participant["audio"][index];
    let wav = a["wav"].as_str().unwrap_or_default().to_owned();
    let (rate, channels, samples) = read_wav(&wav);
    let samples: Vec<i16> = if channels > 1 {
        samples
            .chunks_exact(usize::from(channels))
            .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / i32::from(channels)) as i16)
            .collect()
    } else {
        samples
    };
    // The room counts samples per channel.
    let frames = a["arrivals"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| {
                    Some((
                        x[0].as_f64()?,
                        x[1].as_u64()?,
                        x[2].as_u64()?,
                        x[3].as_u64().unwrap_or(0),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    ReceivedAudio {
        rate,
        samples,
        frames,
    }
}

impl ReceivedAudio {
    /// Room arrival time of sample `index`.
    pub fn arrival_of(&self, index: u64) -> Option<f64> {
        let i = self.frames.partition_point(|f| f.1 <= index);
        let (t, s, _, _) = *self.frames.get(i.checked_sub(1)?)?;
        Some(t + (index - s) as f64 / f64::from(self.rate))
    }
}

/// The sender's clock of one stream, from its RTCP sender reports (RTP timestamp -> sender NTP seconds):
/// what a receiver uses to play audio and video in sync.
///
/// A sender report maps the stream's RTP clock to the sender's wall clock as of that report. Audio RTP
/// timestamps count samples, so when the sender's capture pauses (a stalled loop, an empty engine queue) the
/// mapping moves by the pause: a packet is read through the report received nearest after it, as a receiver
/// playing it at that moment would.
pub struct SenderClock {
    /// (sender NTP seconds, RTP timestamp, room receipt time) per report, in receipt order.
    reports: Vec<(f64, u32, f64)>,
    clock_rate: f64,
    /// The room numbers frames from the stream's first RTP timestamp; this adds it back.
    origin: u64,
}

impl SenderClock {
    pub fn of(track: &Value, clock_rate: f64) -> Self {
        let reports = track["sr"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|r| {
                        Some((
                            r[0].as_f64()?,
                            u32::try_from(r[1].as_u64()?).ok()?,
                            r[2].as_f64().unwrap_or(f64::INFINITY),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let origin = track["rtp_origin"].as_u64().unwrap_or(0);
        Self {
            reports,
            clock_rate,
            origin,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// Sender time of a frame whose room timestamp (pts) is `pts`, through the latest report (wrap-safe).
    pub fn at(&self, pts: u64) -> Option<f64> {
        self.through(*self.reports.last()?, pts)
    }

    /// Sender time of a frame with room timestamp `pts` that arrived at room time `arrived`: through the
    /// first report received after it (the latest if none was).
    pub fn at_near(&self, pts: u64, arrived: f64) -> Option<f64> {
        let i = self.reports.partition_point(|r| r.2 < arrived);
        let r = self.reports.get(i).or(self.reports.last())?;
        self.through(*r, pts)
    }

    fn through(&self, (ntp, base, _): (f64, u32, f64), pts: u64) -> Option<f64> {
        let rtp = pts.wrapping_add(self.origin) as u32;
        let d = rtp.wrapping_sub(base) as i32;
        Some(ntp + f64::from(d) / self.clock_rate)
    }
}

/// The shift (s) that best aligns `activity` (value per video frame at sender times `video_t`) with the audio
/// envelope (`env` at sender times `audio_t`): positive when the audio comes later than the matching mouth
/// motion. Searches `-max..=max` in 5 ms steps; returns (shift, correlation).
pub fn av_shift(
    video_t: &[f64],
    activity: &[f64],
    audio_t: &[f64],
    env: &[f64],
    max: f64,
) -> (f64, f64) {
    let interp = |t: f64| -> f64 {
        let i = audio_t.partition_point(|x| *x <= t);
        if i == 0 || i >= audio_t.len() {
            return 0.0;
        }
        let (t0, t1) = (audio_t[i - 1], audio_t[i]);
        let w = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
        env[i - 1] * (1.0 - w) + env[i] * w
    };
    let mut best = (0.0, f64::MIN);
    let steps = (max / 0.005).round() as i64;
    for k in -steps..=steps {
        let shift = k as f64 * 0.005;
        let e: Vec<f64> = video_t.iter().map(|t| interp(t + shift)).collect();
        let c = correlation(activity, &e);
        if c > best.1 {
            best = (shift, c);
        }
    }
    best
}

/// Pearson correlation.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (
        a[..n].iter().sum::<f64>() / n as f64,
        b[..n].iter().sum::<f64>() / n as f64,
    );
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for i in 0..n {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma).powi(2);
        db += (b[i] - mb).powi(2);
    }
    if da > 0.0 && db > 0.0 {
        num / (da * db).sqrt()
    } else {
        0.0
    }
}

/// A linear frequency sweep, `f0` Hz rising by `slope` Hz per second, at amplitude `amp` (0..1): its
/// instantaneous frequency tells how far into it any received piece is.
pub fn sweep(rate: u32, seconds: f64, f0: f64, slope: f64, amp: f64) -> Vec<i16> {
    let n = (seconds * f64::from(rate)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let phase = std::f64::consts::TAU * (f0 * t + slope * t * t / 2.0);
            (phase.sin() * amp * 32767.0) as i16
        })
        .collect()
}

/// Where a received sweep (see [`sweep`]) was cut off: the sweep time at its last loud sample, from the
/// frequency measured just before it (zero crossings over 20 ms). Accurate to about 15 ms.
pub fn sweep_position(rx: &[i16], rate: u32, f0: f64, slope: f64) -> Option<f64> {
    let loud = |x: i16| x.unsigned_abs() > 2_000;
    let start = rx.iter().position(|x| loud(*x))?;
    // The cut: the first point after which 250 ms stay quiet (a shorter pause is the stream running dry).
    let quiet = (rate / 4) as usize;
    let mut end = start;
    let mut i = start;
    while i < rx.len() {
        if loud(rx[i]) {
            end = i;
        } else if i - end > quiet {
            break;
        }
        i += 1;
    }
    let (win, guard) = ((rate / 50) as usize, (rate / 200) as usize);
    let hi = end.checked_sub(guard)?;
    let lo = hi.checked_sub(win)?;
    let seg = &rx[lo..hi];
    // Interpolated rising zero crossings.
    let mut crossings = Vec::new();
    for k in 1..seg.len() {
        let (a, b) = (f64::from(seg[k - 1]), f64::from(seg[k]));
        if a < 0.0 && b >= 0.0 {
            crossings.push((k - 1) as f64 + a / (a - b));
        }
    }
    if crossings.len() < 3 {
        return None;
    }
    let periods = (crossings.len() - 1) as f64;
    let freq = periods * f64::from(rate) / (crossings[crossings.len() - 1] - crossings[0]);
    // That frequency is the sweep's at the window's middle; the cut is half a window plus the guard later.
    let t_mid = (freq - f0) / slope;
    Some(t_mid + (win / 2 + guard) as f64 / f64::from(rate))
}

/// Normalised cross-correlation of `a` and `b` at lags `-max..=max` (`a[i]` against `b[i + lag]`, only lags at
/// which all of `a` lies inside `b`); returns (best lag, its correlation).
pub fn best_lag(a: &[f64], b: &[f64], max: i64) -> (i64, f64) {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ma, mb) = (mean(a), mean(b));
    let mut best = (0, f64::MIN);
    for lag in -max..=max {
        if lag < 0 || lag as usize + a.len() > b.len() {
            continue;
        }
        let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
        for (i, x) in a.iter().enumerate() {
            let j = i as i64 + lag;
            if j < 0 || j >= b.len() as i64 {
                continue;
            }
            let y = b[j as usize];
            num += (x - ma) * (y - mb);
            da += (x - ma).powi(2);
            db += (y - mb).powi(2);
        }
        let c = if da > 0.0 && db > 0.0 {
            num / (da * db).sqrt()
        } else {
            0.0
        };
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

/// How well a received loudness envelope matches a sent one, piece by piece (see [`windowed_match`]).
#[derive(Debug, Clone)]
pub struct WindowedMatch {
    /// The utterance's one alignment: `received[lag + i]` against `sent[i]` (from [`best_lag`]).
    pub lag: i64,
    /// Pearson correlation of the whole utterance at that one alignment.
    pub global: f64,
    /// Per window that has speech in it: (first envelope index in `sent`, its best correlation, the shift in
    /// envelope steps, within `-max_shift..=max_shift` of `lag`, that gave it).
    pub windows: Vec<(usize, f64, i64)>,
    /// Median of the windows' correlations.
    pub median: f64,
    /// Pearson correlation of all the speech windows together, each placed at its own shift.
    pub pooled: f64,
}

/// Compares the envelope of the speech that was sent with the envelope of what was received, allowing the
/// receiver's clock to wander a little within the utterance (a jitter buffer stretching or squeezing its
/// playout on a busy CPU): the whole is aligned once by [`best_lag`], then every `window` envelope steps of it
/// get their own best alignment within `max_shift` steps of that one. Windows whose sent loudness stays below a
/// tenth of the utterance's peak (silence before, between or after the words) are left out: their correlation
/// is that of noise.
pub fn windowed_match(
    sent: &[f64],
    received: &[f64],
    window: usize,
    max_shift: i64,
) -> WindowedMatch {
    let (lag, _) = best_lag(sent, received, received.len() as i64);
    let at = |from: i64, n: usize| -> &[f64] {
        let lo = usize::try_from(from).unwrap_or(0).min(received.len());
        &received[lo..(lo + n).min(received.len())]
    };
    let global = correlation(sent, at(lag, sent.len()));
    let peak = sent.iter().copied().fold(0.0, f64::max);
    let (mut windows, mut pooled_a, mut pooled_b) = (Vec::new(), Vec::new(), Vec::new());
    let window = window.max(2);
    let mut start = 0;
    while start + window / 2 < sent.len() {
        let a = &sent[start..(start + window).min(sent.len())];
        start += window;
        if a.iter().copied().fold(0.0, f64::max) < 0.1 * peak {
            continue;
        }
        let first = (start - window) as i64;
        let best = (-max_shift..=max_shift)
            .filter(|s| lag + first + s >= 0)
            .map(|s| (correlation(a, at(lag + first + s, a.len())), s))
            .fold((f64::MIN, 0), |b, c| if c.0 > b.0 { c } else { b });
        let b = at(lag + first + best.1, a.len());
        pooled_a.extend_from_slice(&a[..b.len()]);
        pooled_b.extend_from_slice(b);
        windows.push((start - window, best.0, best.1));
    }
    let mut sorted: Vec<f64> = windows.iter().map(|w| w.1).collect();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    WindowedMatch {
        lag,
        global,
        windows,
        median,
        pooled: correlation(&pooled_a, &pooled_b),
    }
}

/// First and last index at which `env` reaches a tenth of its peak: the span of the speech in it.
pub fn loud_span(env: &[f64]) -> Option<(usize, usize)> {
    let peak = env.iter().copied().fold(0.0, f64::max);
    let loud = |v: &f64| peak > 0.0 && *v >= 0.1 * peak;
    Some((env.iter().position(loud)?, env.iter().rposition(loud)?))
}

/// Everything the room saw of one avatar, on the sender's clock.
pub struct Received {
    pub frames: Vec<VideoFrame>,
    /// Sender time of each frame.
    pub video_t: Vec<f64>,
    /// Mouth motion of each frame against the portrait at rest.
    pub mouth: Vec<f64>,
    pub audio: ReceivedAudio,
    /// Sender time and RMS of each received audio packet (20 ms).
    pub audio_t: Vec<f64>,
    pub audio_env: Vec<f64>,
}

/// What the room received from `identity` (its latest record), with the mouth's motion measured around
/// `mouth_at` (normalised coordinates).
pub fn received(report: &Value, identity: &str, mouth_at: (f64, f64)) -> Received {
    let p = report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().rev().find(|p| p["identity"] == identity))
        .cloned()
        .unwrap_or_else(|| panic!("{identity} never joined the room"));
    let frames = video_frames(&p, 0);
    assert!(frames.len() > 50, "only {} frames received", frames.len());
    let vclock = SenderClock::of(&p["video"][0], 90_000.0);
    let audio = received_audio(&p, 0);
    let aclock = SenderClock::of(&p["audio"][0], f64::from(audio.rate));
    assert!(
        !vclock.is_empty() && !aclock.is_empty(),
        "no RTCP sender reports recorded"
    );
    let video_t: Vec<f64> = frames
        .iter()
        .map(|f| vclock.at_near(f.rtp, f.at).unwrap_or(f64::NAN))
        .collect();
    let mut audio_t = Vec::new();
    let mut audio_env = Vec::new();
    for &(arrived, first, n, rtp) in &audio.frames {
        let (a, b) = (first as usize, (first + n) as usize);
        let Some(chunk) = audio.samples.get(a..b.min(audio.samples.len())) else {
            continue;
        };
        audio_t.push(aclock.at_near(rtp, arrived).unwrap_or(f64::NAN));
        audio_env.push(
            envelope(chunk, chunk.len().max(1))
                .first()
                .copied()
                .unwrap_or(0.0),
        );
    }
    let mouth = mouth_motion(&frames, &video_t, &audio_t, &audio_env, mouth_at);
    Received {
        frames,
        video_t,
        mouth,
        audio,
        audio_t,
        audio_env,
    }
}

/// The portrait at rest, per grid cell: the median over the frames where the audio is quietest (the fifth of
/// the frames with the least sound within 120 ms on the sender's clock), so a window that opens mid-speech
/// still compares against a closed mouth. Without audio to tell, the first second stands in.
fn rest_picture(frames: &[VideoFrame], video_t: &[f64], audio_t: &[f64], env: &[f64]) -> Vec<u8> {
    let loudness = |t: f64| -> f64 {
        let lo = audio_t.partition_point(|x| *x < t - 0.12);
        let hi = audio_t.partition_point(|x| *x <= t + 0.12);
        env.get(lo..hi.max(lo))
            .map_or(f64::NAN, |e| e.iter().copied().fold(f64::NAN, f64::max))
    };
    let mut by_quiet: Vec<(f64, usize)> = video_t
        .iter()
        .enumerate()
        .map(|(i, t)| (loudness(*t), i))
        .filter(|(l, _)| l.is_finite())
        .collect();
    by_quiet.sort_by(|a, b| a.0.total_cmp(&b.0));
    let chosen: Vec<usize> = if by_quiet.len() >= 50 {
        by_quiet[..by_quiet.len() / 5].iter().map(|q| q.1).collect()
    } else {
        (5..30.min(frames.len())).collect()
    };
    (0..GRID * GRID)
        .map(|cell| {
            let mut v: Vec<u8> = chosen.iter().map(|&i| frames[i].grid[cell]).collect();
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        })
        .collect()
}

/// What a viewer in a real LiveKit room received from `identity` (the viewer's report, `tests/room/viewer.py`),
/// on the viewer's arrival clock: the Python SDK hands out decoded frames, not RTP timestamps or sender
/// reports, so times are when each decoded video frame and 10 ms audio frame came out of the engine. Good for
/// frame rate, motion in speech against silence and the audio's content; not for A/V sync to the millisecond.
pub fn received_by_viewer(report: &Value, identity: &str, mouth_at: (f64, f64)) -> Received {
    let p = report["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["identity"] == identity))
        .cloned()
        .unwrap_or_else(|| panic!("the viewer never saw {identity}"));
    let frames = video_frames(&p, 0);
    assert!(frames.len() > 50, "only {} frames decoded", frames.len());
    let video_t: Vec<f64> = frames.iter().map(|f| f.at).collect();
    let audio = received_audio(&p, 0);
    let mut audio_t = Vec::new();
    let mut audio_env = Vec::new();
    for &(arrived, first, n, _) in &audio.frames {
        let (a, b) = (first as usize, (first + n) as usize);
        let Some(chunk) = audio.samples.get(a..b.min(audio.samples.len())) else {
            continue;
        };
        audio_t.push(arrived);
        audio_env.push(
            envelope(chunk, chunk.len().max(1))
                .first()
                .copied()
                .unwrap_or(0.0),
        );
    }
    let mouth = mouth_motion(&frames, &video_t, &audio_t, &audio_env, mouth_at);
    Received {
        frames,
        video_t,
        mouth,
        audio,
        audio_t,
        audio_env,
    }
}

/// Mouth motion per frame against the portrait at rest, with the slow drift of idle head motion removed.
fn mouth_motion(
    frames: &[VideoFrame],
    video_t: &[f64],
    audio_t: &[f64],
    audio_env: &[f64],
    mouth_at: (f64, f64),
) -> Vec<f64> {
    let rest = rest_picture(frames, video_t, audio_t, audio_env);
    let raw: Vec<f64> = frames
        .iter()
        .map(|f| region_diff(&rest, &f.grid, mouth_at.0, mouth_at.1, 1))
        .collect();
    // Idle head motion drifts the whole face slowly (a tenth of a hertz); the mouth moves at syllable rate.
    // Subtracting the rolling minimum over +-1 s keeps the mouth and drops the drift.
    (0..raw.len())
        .map(|i| {
            let window = &raw[i.saturating_sub(25)..(i + 26).min(raw.len())];
            raw[i] - window.iter().copied().fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// How far apart audio and mouth may arrive at a viewer (arrival clock: what a player that does not
/// synchronise them shows). Measured +35 to +125 ms (audio later: the SDK's audio jitter buffer holds it,
/// decoded video is handed out at once), against -10 ms on the sender's clock in the same kind of session.
pub const ARRIVAL_AV_LIMIT_S: f64 = 0.2;

impl Received {
    /// (fps, longest gap) over sender timestamps, and the longest gap between arrivals, within the span where
    /// frames flowed (the first second skipped: the encoder's start).
    pub fn pacing(&self) -> (f64, f64, f64) {
        let t0 = self.video_t.first().copied().unwrap_or(0.0) + 1.0;
        let sent: Vec<f64> = self.video_t.iter().copied().filter(|t| *t >= t0).collect();
        let span = sent.last().copied().unwrap_or(0.0) - sent.first().copied().unwrap_or(0.0);
        let fps = (sent.len().saturating_sub(1)) as f64 / span.max(1e-9);
        let gap = sent.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        let (a0, a1) = (
            self.frames[0].at + 1.0,
            self.frames[self.frames.len() - 1].at,
        );
        let (_, arrival_gap) = fps_and_max_gap(&self.frames, a0, a1);
        (fps, gap, arrival_gap)
    }

    /// The A/V offset (s) between the mouth's motion and the audio envelope on this record's clock, positive
    /// when the audio comes later, and the correlation at that offset (searched within +-300 ms). On a
    /// viewer's arrival clock it is what a player that does not synchronise the two would show.
    pub fn av_offset(&self) -> (f64, f64) {
        av_shift(
            &self.video_t,
            &self.mouth,
            &self.audio_t,
            &self.audio_env,
            0.3,
        )
    }

    /// Sender times where the avatar's audio is speech (RMS above 10% of its peak).
    pub fn loud(&self) -> Vec<f64> {
        let peak = self.audio_env.iter().copied().fold(0.0, f64::max);
        self.audio_t
            .iter()
            .zip(&self.audio_env)
            .filter(|(_, e)| **e > 0.1 * peak)
            .map(|(t, _)| *t)
            .collect()
    }
}

/// Where the picture moves most (the mouth, while the avatar speaks): the centroid of the `n` grid cells with
/// the most frame-to-frame change, in normalised coordinates.
pub fn most_active(frames: &[VideoFrame], n: usize) -> (f64, f64) {
    let mut var = vec![0.0f64; GRID * GRID];
    for w in frames.windows(2) {
        for (i, v) in var.iter_mut().enumerate() {
            *v += (f64::from(w[1].grid[i]) - f64::from(w[0].grid[i])).abs();
        }
    }
    let mut idx: Vec<usize> = (0..var.len()).collect();
    idx.sort_by(|a, b| var[*b].total_cmp(&var[*a]));
    idx.truncate(n.max(1));
    let (sx, sy) = idx.iter().fold((0.0, 0.0), |(x, y), &i| {
        (x + (i % GRID) as f64 + 0.5, y + (i / GRID) as f64 + 0.5)
    });
    (
        sx / idx.len() as f64 / GRID as f64,
        sy / idx.len() as f64 / GRID as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_positions_are_recovered() {
        let s = sweep(48_000, 4.0, 200.0, 900.0, 0.3);
        let mut rx = vec![0i16; 24_000];
        rx.extend_from_slice(&s[..(2.345 * 48_000.0) as usize]);
        rx.extend(std::iter::repeat_n(0, 48_000));
        let p = sweep_position(&rx, 48_000, 200.0, 900.0).expect("position");
        assert!((p - 2.345).abs() < 0.01, "{p}");
    }

    #[test]
    fn lag_of_a_shifted_series() {
        let a: Vec<f64> = (0..200)
            .map(|i| ((i as f64) * 0.3).sin() + if i % 37 == 0 { 3.0 } else { 0.0 })
            .collect();
        let b: Vec<f64> = std::iter::repeat_n(0.0, 5)
            .chain(a.iter().copied())
            .collect();
        assert_eq!(best_lag(&a, &b, 10).0, 5);
    }

    #[test]
    fn a_packet_is_read_through_the_report_after_it() {
        // 48 kHz audio whose capture paused for 0.5 s between the two reports: RTP advanced 1 s of samples
        // while 1.5 s passed on the sender's clock.
        let track = serde_json::json!({
            "rtp_origin": 1000,
            "sr": [[100.0, 1000 + 48_000, 10.0], [101.5, 1000 + 96_000, 11.5]],
        });
        let clock = SenderClock::of(&track, 48_000.0);
        let before = clock.at_near(24_000, 9.5).expect("a time");
        assert!((before - 99.5).abs() < 1e-9, "{before}");
        let after = clock.at_near(96_000, 11.4).expect("a time");
        assert!((after - 101.5).abs() < 1e-9, "{after}");
        // Through the latest report only, the packet before the pause would be placed 0.5 s late.
        assert!((clock.at(24_000).expect("a time") - 100.0).abs() < 1e-9);
    }

    #[test]
    fn the_rest_picture_comes_from_the_quiet_frames() {
        // 100 frames; the first 40 and every other later block are "speech" (cell 0 dark), the rest quiet.
        let loud = |i: usize| i < 40 || (i / 10).is_multiple_of(2);
        let frames: Vec<VideoFrame> = (0..100)
            .map(|i| {
                let mut grid = vec![200u8; GRID * GRID];
                grid[0] = if loud(i) { 50 } else { 200 };
                VideoFrame {
                    at: i as f64 * 0.04,
                    rtp: 0,
                    grid,
                }
            })
            .collect();
        let video_t: Vec<f64> = (0..100).map(|i| i as f64 * 0.04).collect();
        // Audio in 20 ms packets: loud while the frame it falls in is loud.
        let audio_t: Vec<f64> = (0..200).map(|i| i as f64 * 0.02).collect();
        let env: Vec<f64> = (0..200)
            .map(|i| if loud(i / 2) { 0.5 } else { 0.0 })
            .collect();
        let rest = rest_picture(&frames, &video_t, &audio_t, &env);
        assert_eq!(
            rest[0], 200,
            "the closed mouth, though the window opens mid-speech"
        );
    }

    /// A syllable-like envelope: bursts of pseudo-random length and height (from `seed`) with pauses.
    fn speechy(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as f64 / f64::from(1u32 << 31)
        };
        let mut out = Vec::new();
        while out.len() < n {
            let (len, height) = (6 + (next() * 10.0) as usize, 0.5 + 4.0 * next());
            let pause = if next() < 0.3 {
                3 + (next() * 8.0) as usize
            } else {
                0
            };
            out.extend(
                (0..len).map(|k| height * (k as f64 / len as f64 * std::f64::consts::PI).sin()),
            );
            out.extend(std::iter::repeat_n(0.02, pause));
        }
        out.truncate(n);
        out
    }

    #[test]
    fn a_wandering_receiver_still_matches_window_by_window() {
        // 4 s of speech in 20 ms steps, received 1 s late, drifting 3 steps (60 ms) early over the first half and
        // 3 steps late over the second, as a jitter buffer under load played it.
        let sent = speechy(200, 1);
        let drift = |i: usize| -> i64 {
            match i {
                0..=49 => 0,
                50..=99 => -3,
                100..=149 => 0,
                _ => 3,
            }
        };
        let mut rx = vec![0.01; 450];
        for (i, v) in sent.iter().enumerate() {
            rx[(50 + i as i64 + drift(i)) as usize] = *v;
        }
        let m = windowed_match(&sent, &rx, 25, 3);
        assert!((m.lag - 50).abs() <= 1, "{m:?}");
        assert!(m.median > 0.95 && m.pooled > 0.95, "{m:?}");
        assert!(m.global < m.pooled, "{m:?}");
        // Other speech is not matched by any wandering.
        let other = speechy(200, 2);
        let m = windowed_match(&other, &rx, 25, 3);
        assert!(m.median < 0.8, "{m:?}");
    }
}
