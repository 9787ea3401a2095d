//! The lip-sync report (`lipcast-eval`): both audio front ends on a held-out voice used in no training,
//! scored against the targets derived from its known phoneme timing (`models/eval/mouth-heldout`, made by
//! `scripts/mouth/train.py`; provenance in `models/NOTICE`).
//!
//! Metrics (`docs/models.md`, "How good lip sync is measured"):
//! - **closed on silence**: share of silent frames with the lips closed ([`lips_closed`]). Silent frames are the
//!   frames of the held-out clips with no phone within one frame of them, plus synthetic room tone (digital
//!   silence, a -68 dBFS noise floor and -55 dBFS white noise, 2 s each). Target >= 95%.
//! - **bilabial recall**: share of /m/, /b/, /p/ with the lips closed on some frame overlapping the phone or within
//!   one frame of it. Target >= 90%.
//! - **false closures**: share of clearly open frames (target opening >= 0.3, i.e. vowels) on which the front end
//!   shows the lips closed: the price of recall bought by closing too often. Not a target of the issue; shown
//!   because recall alone rewards a mouth that is always shut.
//! - **jaw/envelope correlation**: Pearson correlation of `jaw_open` with the speech envelope over the speech
//!   clips, and the lag (frames, positive = jaw after the envelope) of the peak of the cross-correlation within
//!   +-5 frames (computed per clip, averaged). The envelope is the level of each frame's 640 samples in dB (RMS),
//!   floored 50 dB below the clip's peak: a loudness envelope, so that a few loud vowels do not dominate. Target
//!   >= 0.7, peak at 0 +- 1.
//! - **parameter error**: mean absolute error of each parameter and of the lip opening against the targets.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use lipcast_worker::audio::{
    DspFrontend, MouthFrontend, MouthParams, NetworkFrontend, SAMPLE_RATE, SAMPLES_PER_FRAME,
};
use lipcast_worker::model::{ModelPack, Runtime, RuntimeConfig};

/// Lip opening (`MouthParams::opening`) at or below which the lips count as closed: a tenth of the widest
/// opening, about 1% of the face height on the rendered portrait.
pub const CLOSED_OPENING: f32 = 0.1;
/// Phones that close the lips.
pub const BILABIALS: [&str; 3] = ["m", "b", "p"];
/// Lags searched for the cross-correlation peak, frames.
pub const MAX_LAG: i32 = 5;

/// Whether the lips are shut in `p`.
pub fn lips_closed(p: &MouthParams) -> bool {
    p.opening() <= CLOSED_OPENING
}

/// `lipcast-eval`: prints the lip-sync report for the network and the DSP baseline.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Held-out set (a folder with heldout.json and its WAVs); default <models dir>/eval/mouth-heldout.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model pack holding the network (role "mouth"); default the built-in pack.
    #[arg(long)]
    pub pack: Option<PathBuf>,
    /// Also print per-frame parameters of each clip.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Deserialize)]
struct HeldoutFile {
    sample_rate: u32,
    clips: Vec<ClipFile>,
}

#[derive(Debug, Deserialize)]
struct ClipFile {
    wav: String,
    text: String,
    voice: String,
    phones: Vec<(String, f64, f64)>,
    targets: Vec<[f32; 4]>,
}

/// One held-out clip: 16 kHz audio, its phones (IPA symbol, start s, end s) and per-frame targets.
#[derive(Debug, Clone)]
pub struct Clip {
    pub name: String,
    pub text: String,
    pub voice: String,
    pub pcm: Vec<f32>,
    pub phones: Vec<(String, f64, f64)>,
    pub targets: Vec<MouthParams>,
}

/// The default held-out folder.
pub fn default_heldout_dir() -> Option<PathBuf> {
    lipcast_worker::model::pack::models_dir().map(|d| d.join("eval").join("mouth-heldout"))
}

/// Reads 16-bit PCM mono WAV at 16 kHz.
pub fn read_wav_16k(path: &Path) -> anyhow::Result<Vec<f32>> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        bail!("{} is not a WAV file", path.display());
    }
    let mut i = 12;
    let mut format = None;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let size = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = &b[i + 8..(i + 8 + size).min(b.len())];
        if id == b"fmt " && body.len() >= 16 {
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            format = Some((channels, rate, bits));
        } else if id == b"data" {
            match format {
                Some((1, SAMPLE_RATE, 16)) => {
                    return Ok(body
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
                        .collect());
                }
                Some((ch, rate, bits)) => bail!(
                    "{}: {ch} channel(s), {rate} Hz, {bits} bits; expected 16-bit mono 16 kHz",
                    path.display()
                ),
                None => bail!("{}: data before fmt chunk", path.display()),
            }
        }
        i += 8 + size + (size & 1);
    }
    bail!("{}: no data chunk", path.display())
}

/// Loads the held-out set in `dir`.
pub fn load_heldout(dir: &Path) -> anyhow::Result<Vec<Clip>> {
    let path = dir.join("heldout.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: HeldoutFile =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if file.sample_rate != SAMPLE_RATE {
        bail!("{}: sample_rate must be {SAMPLE_RATE}", path.display());
    }
    file.clips
        .into_iter()
        .map(|c| {
            let pcm = read_wav_16k(&dir.join(&c.wav))?;
            let frames = pcm.len().div_ceil(SAMPLES_PER_FRAME);
            if c.targets.len() != frames {
                bail!("{}: {} targets for {frames} frames", c.wav, c.targets.len());
            }
            Ok(Clip {
                name: c.wav,
                text: c.text,
                voice: c.voice,
                pcm,
                phones: c.phones,
                targets: c
                    .targets
                    .iter()
                    .map(|t| MouthParams {
                        jaw_open: t[0],
                        width: t[1],
                        round: t[2],
                        closure: t[3],
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Runs `fe` over `pcm` from a reset, pushing uneven chunks as a network stream would, and flushes: one
/// parameter set per 40 ms frame.
pub fn run_frontend(fe: &mut dyn MouthFrontend, pcm: &[f32]) -> Vec<MouthParams> {
    fe.reset();
    let mut out = Vec::with_capacity(pcm.len() / SAMPLES_PER_FRAME + 1);
    for chunk in pcm.chunks(317) {
        fe.push(chunk);
        out.extend(std::iter::from_fn(|| fe.pop()));
    }
    fe.flush();
    out.extend(std::iter::from_fn(|| fe.pop()));
    out
}

/// Synthetic room tone, 2 s each: digital silence, a -68 dBFS noise floor, -55 dBFS white noise.
pub fn room_tone() -> Vec<Vec<f32>> {
    let n = 2 * SAMPLE_RATE as usize;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let floor: Vec<f32> = (0..n).map(|_| uniform() * 6.9e-4).collect();
    // Uniform noise of amplitude a has RMS a/sqrt(3): -55 dBFS RMS.
    let a = 10f32.powf(-55.0 / 20.0) * 3f32.sqrt();
    let white: Vec<f32> = (0..n).map(|_| uniform() * a).collect();
    vec![vec![0.0; n], floor, white]
}

/// Frames of a clip with no phone (other than pauses) within one frame.
pub fn silent_frames(clip: &Clip) -> Vec<usize> {
    let frames = clip.targets.len();
    let speech: Vec<(f64, f64)> = clip
        .phones
        .iter()
        .filter(|(s, _, _)| s != "pau")
        .map(|(_, a, b)| (*a, *b))
        .collect();
    (0..frames)
        .filter(|&k| {
            let (lo, hi) = ((k as f64 - 1.0) * 0.04, (k as f64 + 2.0) * 0.04);
            speech.iter().all(|&(a, b)| b <= lo || a >= hi)
        })
        .collect()
}

/// Frame ranges (inclusive) of each bilabial, widened by one frame on each side.
pub fn bilabial_windows(clip: &Clip) -> Vec<(String, f64, usize, usize)> {
    let last = clip.targets.len().saturating_sub(1);
    clip.phones
        .iter()
        .filter(|(s, _, _)| BILABIALS.contains(&s.as_str()))
        .map(|(s, a, b)| {
            let first = (a / 0.04).floor() as usize;
            let end = ((b / 0.04).ceil() as usize).saturating_sub(1).max(first);
            (s.clone(), *a, first.saturating_sub(1), (end + 1).min(last))
        })
        .collect()
}

/// Envelope floor below the clip's peak level, dB.
pub const ENVELOPE_RANGE_DB: f32 = 50.0;
/// Target opening from which a frame counts as clearly open (for false closures).
pub const OPEN_TARGET: f32 = 0.3;

/// Per-frame level in dB (RMS), floored [`ENVELOPE_RANGE_DB`] below the clip's peak.
pub fn envelope(pcm: &[f32], frames: usize) -> Vec<f32> {
    let db: Vec<f32> = rms(pcm, frames)
        .iter()
        .map(|r| 20.0 * (r + 1e-6).log10())
        .collect();
    let peak = db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    db.iter().map(|d| d.max(peak - ENVELOPE_RANGE_DB)).collect()
}

/// Per-frame RMS of the audio.
pub fn rms(pcm: &[f32], frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|k| {
            let s = &pcm[(k * SAMPLES_PER_FRAME).min(pcm.len())
                ..((k + 1) * SAMPLES_PER_FRAME).min(pcm.len())];
            if s.is_empty() {
                0.0
            } else {
                (s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32).sqrt()
            }
        })
        .collect()
}

/// Pearson correlation of the common prefix of `a` and `b` (0 when either is constant or too short).
pub fn pearson(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (
        a[..n].iter().sum::<f32>() / n as f32,
        b[..n].iter().sum::<f32>() / n as f32,
    );
    let (mut sab, mut saa, mut sbb) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let (x, y) = ((a[i] - ma) as f64, (b[i] - mb) as f64);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        (sab / (saa * sbb).sqrt()) as f32
    }
}

/// The report's numbers for one front end.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub silent_closed: usize,
    pub silent_frames: usize,
    /// The room-tone part of `silent_*` (the rest are pauses inside the clips).
    pub tone_closed: usize,
    pub tone_frames: usize,
    pub bilabial_hits: usize,
    pub bilabials: usize,
    /// Bilabials missed: (clip, phone, start s).
    pub missed: Vec<(String, String, f64)>,
    pub false_closed: usize,
    pub open_frames: usize,
    pub correlation: f32,
    /// Correlation at each lag -MAX_LAG..=MAX_LAG.
    pub lag_correlations: Vec<(i32, f32)>,
    pub peak_lag: i32,
    /// Mean absolute error of jaw_open, width, round, closure.
    pub mae: [f32; 4],
    pub opening_mae: f32,
    pub frames: usize,
    /// Processing time per 40 ms frame (features + inference), milliseconds.
    pub ms_per_frame: f64,
}

impl Metrics {
    pub fn silent_share(&self) -> f32 {
        self.silent_closed as f32 / self.silent_frames.max(1) as f32
    }
    pub fn bilabial_recall(&self) -> f32 {
        self.bilabial_hits as f32 / self.bilabials.max(1) as f32
    }
    pub fn false_closure_share(&self) -> f32 {
        self.false_closed as f32 / self.open_frames.max(1) as f32
    }
    pub fn mean_mae(&self) -> f32 {
        self.mae.iter().sum::<f32>() / 4.0
    }
}

/// Scores `outputs[i]` (one per frame of `clips[i]`) and `tone_outputs` (the front end on [`room_tone`]).
pub fn score(
    clips: &[Clip],
    outputs: &[Vec<MouthParams>],
    tone_outputs: &[Vec<MouthParams>],
) -> Metrics {
    let mut m = Metrics::default();
    let (mut jaw, mut env) = (Vec::new(), Vec::new());
    let mut lagged: Vec<(i32, f64, usize)> = (-MAX_LAG..=MAX_LAG).map(|l| (l, 0.0, 0)).collect();
    let mut abs = [0.0f64; 5];
    for (clip, out) in clips.iter().zip(outputs) {
        let n = clip.targets.len().min(out.len());
        for k in silent_frames(clip) {
            if k < n {
                m.silent_frames += 1;
                m.silent_closed += usize::from(lips_closed(&out[k]));
            }
        }
        for (s, start, a, b) in bilabial_windows(clip) {
            m.bilabials += 1;
            if out[a.min(n - 1)..=b.min(n - 1)].iter().any(lips_closed) {
                m.bilabial_hits += 1;
            } else {
                m.missed.push((clip.name.clone(), s, start));
            }
        }
        let e = envelope(&clip.pcm, n);
        let j: Vec<f32> = out[..n].iter().map(|p| p.jaw_open).collect();
        // Cross-correlation per clip (lags must not run across clip boundaries), averaged weighted by length.
        for (lag, acc, cnt) in lagged.iter_mut() {
            let (ja, ea): (Vec<f32>, Vec<f32>) = (0..n as i32)
                .filter_map(|k| {
                    let kj = k + *lag;
                    (kj >= 0 && (kj as usize) < n).then(|| (j[kj as usize], e[k as usize]))
                })
                .unzip();
            *acc += pearson(&ja, &ea) as f64 * ja.len() as f64;
            *cnt += ja.len();
        }
        jaw.extend_from_slice(&j);
        env.extend_from_slice(&e);
        for (p, t) in out[..n].iter().zip(&clip.targets) {
            if t.opening() >= OPEN_TARGET {
                m.open_frames += 1;
                m.false_closed += usize::from(lips_closed(p));
            }
            abs[0] += (p.jaw_open - t.jaw_open).abs() as f64;
            abs[1] += (p.width - t.width).abs() as f64;
            abs[2] += (p.round - t.round).abs() as f64;
            abs[3] += (p.closure - t.closure).abs() as f64;
            abs[4] += (p.opening() - t.opening()).abs() as f64;
        }
        m.frames += n;
    }
    for out in tone_outputs {
        m.tone_frames += out.len();
        m.tone_closed += out.iter().filter(|p| lips_closed(p)).count();
    }
    m.silent_frames += m.tone_frames;
    m.silent_closed += m.tone_closed;
    m.correlation = pearson(&jaw, &env);
    m.lag_correlations = lagged
        .iter()
        .map(|(l, acc, cnt)| (*l, (*acc / (*cnt).max(1) as f64) as f32))
        .collect();
    m.peak_lag = m
        .lag_correlations
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |x| x.0);
    let f = m.frames.max(1) as f64;
    m.mae = [
        (abs[0] / f) as f32,
        (abs[1] / f) as f32,
        (abs[2] / f) as f32,
        (abs[3] / f) as f32,
    ];
    m.opening_mae = (abs[4] / f) as f32;
    m
}

/// Runs a front end over the held-out clips and the room tone and scores it.
pub fn evaluate(fe: &mut dyn MouthFrontend, clips: &[Clip]) -> (Metrics, Vec<Vec<MouthParams>>) {
    let t0 = std::time::Instant::now();
    let outputs: Vec<Vec<MouthParams>> = clips.iter().map(|c| run_frontend(fe, &c.pcm)).collect();
    let speech_ms = t0.elapsed().as_secs_f64() * 1e3;
    let tone: Vec<Vec<MouthParams>> = room_tone()
        .iter()
        .map(|pcm| run_frontend(fe, pcm))
        .collect();
    let mut m = score(clips, &outputs, &tone);
    m.ms_per_frame = speech_ms / m.frames.max(1) as f64;
    (m, outputs)
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISS" }
}

/// Prints the report table for the named front ends' metrics.
pub fn print_report(rows: &[(&str, &Metrics)], clips: &[Clip]) {
    let secs: f32 = clips.iter().map(|c| c.pcm.len() as f32).sum::<f32>() / SAMPLE_RATE as f32;
    let voices: std::collections::BTreeSet<&str> = clips.iter().map(|c| c.voice.as_str()).collect();
    println!(
        "lip-sync report: {} held-out clips ({secs:.1} s, voice {}), {} frames, {} bilabials, {} silent frames, {} open frames",
        clips.len(),
        voices.into_iter().collect::<Vec<_>>().join(", "),
        rows.first().map_or(0, |r| r.1.frames),
        rows.first().map_or(0, |r| r.1.bilabials),
        rows.first().map_or(0, |r| r.1.silent_frames),
        rows.first().map_or(0, |r| r.1.open_frames),
    );
    println!(
        "{:<18} {:>13} {:>13} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "front end",
        "closed@sil",
        "bilabial",
        "falseclo",
        "corr(jaw)",
        "peaklag",
        "mae_jaw",
        "mae_wid",
        "mae_rnd",
        "mae_clo",
        "mae_mean",
        "mae_open"
    );
    println!(
        "{:<18} {:>13} {:>13} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "target", ">= 95%", ">= 90%", "lower", ">= 0.70", "0 +- 1", "", "", "", "", "lowest", ""
    );
    for (name, m) in rows {
        println!(
            "{:<18} {:>6.1}% {:>4}  {:>6.1}% {:>4}  {:>8.1}% {:>5.3} {:>4} {:>+4} {:>3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            name,
            100.0 * m.silent_share(),
            mark(m.silent_share() >= 0.95),
            100.0 * m.bilabial_recall(),
            mark(m.bilabial_recall() >= 0.90),
            100.0 * m.false_closure_share(),
            m.correlation,
            mark(m.correlation >= 0.7),
            m.peak_lag,
            mark(m.peak_lag.abs() <= 1),
            m.mae[0],
            m.mae[1],
            m.mae[2],
            m.mae[3],
            m.mean_mae(),
            m.opening_mae,
        );
    }
    for (name, m) in rows {
        let lags: Vec<String> = m
            .lag_correlations
            .iter()
            .map(|(l, c)| format!("{l:+}:{c:.2}"))
            .collect();
        println!(
            "{name}: closed on {}/{} pauses in the clips, {}/{} room tone; jaw/envelope correlation by lag (frames) {}; {:.3} ms per frame",
            m.silent_closed - m.tone_closed,
            m.silent_frames - m.tone_frames,
            m.tone_closed,
            m.tone_frames,
            lags.join(" "),
            m.ms_per_frame
        );
        if !m.missed.is_empty() {
            let miss: Vec<String> = m
                .missed
                .iter()
                .map(|(c, s, t)| format!("{s}@{t:.2}s in {c}"))
                .collect();
            println!("{name}: bilabials missed: {}", miss.join(", "));
        }
    }
}

/// `lipcast-eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let dir = match &args.data {
        Some(d) => d.clone(),
        None => {
            default_heldout_dir().context("models folder not found (set LIPCAST_MODELS_DIR)")?
        }
    };
    let clips = load_heldout(&dir)
        .with_context(|| format!("loading the held-out set in {}", dir.display()))?;
    let pack = match &args.pack {
        Some(p) => ModelPack::load(p),
        None => ModelPack::builtin(),
    }
    .context("loading the model pack")?;
    let runtime = Runtime::new(RuntimeConfig {
        device: lipcast_worker::model::Device::Cpu,
        intra_threads: 1,
    })
    .context("starting ONNX Runtime")?;
    let mut net =
        NetworkFrontend::load(&runtime, &pack).context("loading the network front end")?;
    let (net_m, net_out) = evaluate(&mut net, &clips);
    let mut raw = NetworkFrontend::load(&runtime, &pack)?.with_gate(false);
    let (raw_m, _) = evaluate(&mut raw, &clips);
    let (dsp_m, dsp_out) = evaluate(&mut DspFrontend::new(), &clips);
    // Reference row: the targets themselves scored the same way (what perfect agreement would give).
    let replay: Vec<Vec<MouthParams>> = clips.iter().map(|c| c.targets.clone()).collect();
    let tone_rest: Vec<Vec<MouthParams>> = room_tone()
        .iter()
        .map(|p| vec![MouthParams::REST; p.len().div_ceil(SAMPLES_PER_FRAME)])
        .collect();
    let tgt_m = score(&clips, &replay, &tone_rest);
    print_report(
        &[
            ("network", &net_m),
            ("network (no gate)", &raw_m),
            ("dsp", &dsp_m),
            ("targets (ref)", &tgt_m),
        ],
        &clips,
    );
    let wins =
        net_m.mean_mae() < dsp_m.mean_mae() && net_m.bilabial_recall() > dsp_m.bilabial_recall();
    println!(
        "network vs dsp: mean parameter error {:.3} vs {:.3}, bilabial recall {:.1}% vs {:.1}%: the network {}",
        net_m.mean_mae(),
        dsp_m.mean_mae(),
        100.0 * net_m.bilabial_recall(),
        100.0 * dsp_m.bilabial_recall(),
        if wins {
            "is ahead on both"
        } else {
            "is NOT ahead on both"
        }
    );
    if args.verbose {
        for ((clip, n), d) in clips.iter().zip(&net_out).zip(&dsp_out) {
            println!("{} ({:?})", clip.name, clip.text);
            for (k, ((p, q), t)) in n.iter().zip(d).zip(&clip.targets).enumerate() {
                println!(
                    "  {k:3} target open {:.2} clo {:.2} | net open {:.2} clo {:.2} jaw {:.2} | dsp open {:.2} clo {:.2} jaw {:.2}",
                    t.opening(),
                    t.closure,
                    p.opening(),
                    p.closure,
                    p.jaw_open,
                    q.opening(),
                    q.closure,
                    q.jaw_open
                );
            }
        }
    }
    Ok(())
}
