//! Model packs: a folder with `manifest.toml` and the ONNX files it lists, each checked against its sha256 on
//! load. The format is described in `docs/models.md`.

use std::{
    io::Read,
    path::{Component, Path, PathBuf},
};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a pack cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(
        "model pack folder not found (looked in LIPCAST_MODELS_DIR, ./models, the repository of the executable, /opt/lipcast/models)"
    )]
    NotFound,
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "model pack file {file} does not match its manifest: sha256 is {actual}, manifest says {expected}"
    )]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("model pack {pack} has no file with role \"{role}\"")]
    MissingRole { pack: String, role: FileRole },
}

/// What the worker uses a pack's file for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// The face detector (built-in pack, or a generator pack's own).
    FaceDetector,
    /// The 468-point face mesh.
    FaceMesh,
    /// The audio-to-mouth network of the `network` front end.
    Mouth,
    /// A generator pack's model, one call per batch of frames.
    Generate,
    /// A generator pack's audio encoder (`audio_feature = "audio_onnx"`).
    Audio,
    /// A generator pack's once-per-portrait network.
    Prepare,
    /// Weights an ONNX file keeps beside it (protobuf's 2 GiB limit); only its sha256 is checked.
    ExternalData,
}

impl std::fmt::Display for FileRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileRole::FaceDetector => "face_detector",
            FileRole::FaceMesh => "face_mesh",
            FileRole::Mouth => "mouth",
            FileRole::Generate => "generate",
            FileRole::Audio => "audio",
            FileRole::Prepare => "prepare",
            FileRole::ExternalData => "external_data",
        })
    }
}

/// How a pack renders.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RendererKind {
    /// The landmark warp of `avatar::render`, driven by an audio front end.
    Warp,
    /// A neural generator, described by the `[generator]` table (`crate::generator`).
    Generator,
}

/// The audio front end of a warp pack: what turns speech into mouth parameters.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FrontendKind {
    /// The trained network (`mouth` file of the pack). The built-in pack's choice: it beats the DSP baseline on
    /// the held-out voice (see `models/builtin/MOUTH_MODEL_CARD.md` and `lipcast-eval` in `lipcast-tools`).
    Network,
    /// The DSP baseline (`audio::dsp`): no model file needed; a warp pack that names no front end gets it.
    #[default]
    Dsp,
}

/// The audio feature a generator pack's model takes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AudioFeature {
    /// Wav2Lip's mel spectrogram, computed by the worker (`audio::mel80`).
    Mel80Wav2lip,
    /// The pack's own `audio.onnx`, run as [`AudioOnnxSpec`] says (`generator::feature`).
    AudioOnnx,
}

impl std::fmt::Display for AudioFeature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AudioFeature::Mel80Wav2lip => "mel80_wav2lip",
            AudioFeature::AudioOnnx => "audio_onnx",
        })
    }
}

/// One input or output tensor a file declares.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    /// Dimensions; -1 for a dynamic one.
    pub shape: Vec<i64>,
}

/// One file of the pack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    pub role: FileRole,
    /// Relative to the pack folder; no `..`.
    pub path: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
}

/// Output of the renderer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Long side of the rendered frames (the portrait's working resolution), pixels; even.
    pub max_long_side: u32,
}

/// `manifest.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Video frame rate the pack renders at.
    pub fps: u32,
    /// The pack's preferred audio front end (`network` needs a file with role `mouth`). `AUDIO_FRONTEND`
    /// overrides it (`FrontendKind::resolve`). Warp packs only; a generator pack computes its own audio feature
    /// (`[generator] audio_feature`).
    #[serde(default)]
    pub frontend: Option<FrontendKind>,
    pub renderer: RendererKind,
    pub output: OutputSpec,
    /// The plug-in contract of a `renderer = "generator"` pack.
    #[serde(default)]
    pub generator: Option<GeneratorSpec>,
    pub files: Vec<PackFile>,
}

impl Manifest {
    /// The audio front end a warp pack names (the default when it names none).
    pub fn frontend(&self) -> FrontendKind {
        self.frontend.unwrap_or_default()
    }
}

/// `[generator]`: how the worker drives a neural generator (`generate.onnx`). Every field is checked on load;
/// the format is described in `docs/models.md` ("Generator packs").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    /// Side S of the square face crop the model takes and returns, pixels.
    pub face_size: u32,
    /// Channel order of the face tensors: `rgb` or `bgr` (Wav2Lip was trained on OpenCV's BGR).
    pub channel_order: ChannelOrder,
    /// Pixel values of the face tensors (inputs and output): `[lo, hi]` maps 0..255 linearly (Wav2Lip: [0, 1]).
    pub value_range: [f32; 2],
    /// Face input layout: `masked_and_reference` = one [B,6,S,S] tensor, channels 0-2 the crop with its lower
    /// half zeroed, channels 3-5 the reference crop (Wav2Lip).
    pub face_input: FaceInput,
    /// Audio feature the model takes.
    pub audio_feature: AudioFeature,
    /// How `audio.onnx` is run (`audio_feature = "audio_onnx"` only).
    #[serde(default)]
    pub audio_onnx: Option<AudioOnnxSpec>,
    /// Feature frames per video frame's window (Wav2Lip: 16 mel frames = 200 ms).
    pub audio_window: u32,
    /// Mel frames the window starts after the frame's own position (Wav2Lip: 0, the window starts at the
    /// frame's first mel frame, `int(80 * i / fps)`); negative centres it earlier.
    #[serde(default)]
    pub audio_offset: i32,
    /// Frames per `generate.onnx` call (the B of its inputs).
    pub batch_size: u32,
    /// The face crop: a square around the face's mesh extent.
    pub crop: CropSpec,
    /// Paste-back of the generated crop onto the frame.
    pub paste: PasteSpec,
}

/// `[generator.audio_onnx]`: `audio.onnx` maps 16 kHz PCM `[1, N]` to features `[1, T, C]` at `rate` frames
/// per second (T = N * rate / 16000). The worker runs it on chunks of `chunk_ms` of the segment's audio with
/// `context_ms` of audio on each side (zeros before the segment's start and after its end) and keeps the chunk's
/// own T frames, so every call costs the same and a frame's features are final once the chunk and its right
/// context have arrived.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AudioOnnxSpec {
    pub rate: u32,
    pub chunk_ms: u32,
    #[serde(default)]
    pub context_ms: u32,
}

impl AudioOnnxSpec {
    /// Samples per feature frame.
    pub fn hop(&self) -> usize {
        16_000 / self.rate.max(1) as usize
    }
    pub fn chunk_samples(&self) -> usize {
        self.chunk_ms as usize * 16
    }
    pub fn context_samples(&self) -> usize {
        self.context_ms as usize * 16
    }
}

/// Channel order of face tensors.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// Layout of the face input of `generate.onnx`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaceInput {
    MaskedAndReference,
}

/// `[generator.crop]`: the square face crop, axis-aligned, in working-image pixels. Its side is `scale` times
/// the larger of the mesh's width and height, its centre the mesh's centre moved down by `shift_down` times
/// the side. Parts outside the image are filled with the nearest edge pixel.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CropSpec {
    pub scale: f32,
    #[serde(default)]
    pub shift_down: f32,
}

/// `[generator.paste]`: the generated crop is resized to the crop box and blended into the frame with a weight
/// that is 1 inside and falls linearly to 0 over `feather` (a fraction of the side) at each edge; `region`
/// `lower_half` keeps the portrait above the crop's middle (with the same feather across the middle).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PasteSpec {
    pub feather: f32,
    pub region: PasteRegion,
}

/// Which part of the generated crop is pasted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PasteRegion {
    Full,
    LowerHalf,
}

/// A verified pack.
#[derive(Debug, Clone)]
pub struct ModelPack {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelPack {
    /// Reads `dir/manifest.toml`, validates it and checks every file's sha256. A missing, extra-path or altered
    /// file is an error naming it.
    pub fn load(dir: &Path) -> Result<Self, PackError> {
        let manifest_path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| PackError::Io {
            path: manifest_path.clone(),
            source,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| PackError::Manifest {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| PackError::Manifest {
            path: manifest_path.clone(),
            reason,
        };
        if manifest.fps == 0 || manifest.fps > 120 {
            return Err(bad(format!("fps {} out of range 1..=120", manifest.fps)));
        }
        let side = manifest.output.max_long_side;
        if !(64..=4096).contains(&side) || !side.is_multiple_of(2) {
            return Err(bad(format!(
                "output.max_long_side {side} must be even and within 64..=4096"
            )));
        }
        match (manifest.renderer, &manifest.generator) {
            (RendererKind::Warp, Some(_)) => {
                return Err(bad(
                    "a [generator] table needs renderer = \"generator\"".into()
                ));
            }
            (RendererKind::Warp, None) => {}
            (RendererKind::Generator, Some(g)) => check_generator(&manifest, g).map_err(bad)?,
            (RendererKind::Generator, None) => {
                return Err(bad(
                    "renderer = \"generator\" needs a [generator] table".into()
                ));
            }
        }
        if manifest.renderer == RendererKind::Warp
            && manifest.frontend() == FrontendKind::Network
            && !manifest.files.iter().any(|f| f.role == FileRole::Mouth)
        {
            return Err(bad(
                "frontend = \"network\" needs a [[files]] entry with role \"mouth\"".into(),
            ));
        }
        if manifest.files.is_empty() {
            return Err(bad("no files listed".into()));
        }
        for f in &manifest.files {
            let rel = Path::new(&f.path);
            if f.path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(bad(format!(
                    "file path {:?} must be relative and stay inside the pack",
                    f.path
                )));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("sha256 of {} is not 64 hex digits", f.path)));
            }
            let actual = sha256_file(&dir.join(rel))?;
            if !actual.eq_ignore_ascii_case(&f.sha256) {
                return Err(PackError::HashMismatch {
                    file: dir.join(rel).display().to_string(),
                    expected: f.sha256.to_ascii_lowercase(),
                    actual,
                });
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The built-in pack (`<models dir>/builtin`).
    pub fn builtin() -> Result<Self, PackError> {
        Self::load(&models_dir().ok_or(PackError::NotFound)?.join("builtin"))
    }

    /// The file with `role`.
    pub fn file(&self, role: FileRole) -> Result<&PackFile, PackError> {
        self.manifest
            .files
            .iter()
            .find(|f| f.role == role)
            .ok_or_else(|| PackError::MissingRole {
                pack: self.manifest.name.clone(),
                role,
            })
    }

    /// Absolute path of the file with `role`.
    pub fn path(&self, role: FileRole) -> Result<PathBuf, PackError> {
        Ok(self.dir.join(&self.file(role)?.path))
    }
}

/// Checks a generator pack's `[generator]` table and its `generate` file's declared tensors against each
/// other; the ONNX file's own tensor names are checked when its session is created (`generator::model`).
fn check_generator(m: &Manifest, g: &GeneratorSpec) -> Result<(), String> {
    if m.frontend.is_some() {
        return Err(
            "frontend applies to warp packs only; a generator pack names [generator] audio_feature"
                .into(),
        );
    }
    if !(32..=1024).contains(&g.face_size) {
        return Err(format!(
            "generator.face_size {} out of range 32..=1024",
            g.face_size
        ));
    }
    let [lo, hi] = g.value_range;
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Err(format!(
            "generator.value_range [{lo}, {hi}] must be finite with hi > lo"
        ));
    }
    if !(1..=64).contains(&g.audio_window) {
        return Err(format!(
            "generator.audio_window {} out of range 1..=64",
            g.audio_window
        ));
    }
    if !(-64..=64).contains(&g.audio_offset) {
        return Err(format!(
            "generator.audio_offset {} out of range -64..=64",
            g.audio_offset
        ));
    }
    if !(1..=32).contains(&g.batch_size) {
        return Err(format!(
            "generator.batch_size {} out of range 1..=32",
            g.batch_size
        ));
    }
    if !(g.crop.scale.is_finite() && (0.5..=4.0).contains(&g.crop.scale)) {
        return Err(format!(
            "generator.crop.scale {} out of range 0.5..=4",
            g.crop.scale
        ));
    }
    if !(g.crop.shift_down.is_finite() && (-0.5..=0.5).contains(&g.crop.shift_down)) {
        return Err(format!(
            "generator.crop.shift_down {} out of range -0.5..=0.5",
            g.crop.shift_down
        ));
    }
    if !(g.paste.feather.is_finite() && (0.0..=0.5).contains(&g.paste.feather)) {
        return Err(format!(
            "generator.paste.feather {} out of range 0..=0.5",
            g.paste.feather
        ));
    }
    let one = |role: FileRole| -> Result<Option<&PackFile>, String> {
        let all: Vec<&PackFile> = m.files.iter().filter(|f| f.role == role).collect();
        match all.as_slice() {
            [] => Ok(None),
            [f] => Ok(Some(f)),
            _ => Err(format!(
                "a generator pack has at most one [[files]] entry with role \"{role}\" ({} found)",
                all.len()
            )),
        }
    };
    let Some(file) = one(FileRole::Generate)? else {
        return Err(
            "a generator pack needs exactly one [[files]] entry with role \"generate\" (0 found)"
                .into(),
        );
    };
    let audio = one(FileRole::Audio)?;
    let prepare = one(FileRole::Prepare)?;
    let s = i64::from(g.face_size);
    let b = i64::from(g.batch_size);
    let w = i64::from(g.audio_window);
    let batch_ok = |d: i64| d == -1 || d == b;
    let shape_ok = |t: &TensorSpec, rest: &[i64]| {
        t.shape.len() == rest.len() + 1 && batch_ok(t.shape[0]) && t.shape[1..] == *rest
    };
    // The per-frame shape of generate's first input, the audio window.
    let audio_rest: Vec<i64> = match (g.audio_feature, audio, &g.audio_onnx) {
        (AudioFeature::Mel80Wav2lip, None, None) => vec![1, 80, w],
        (AudioFeature::Mel80Wav2lip, ..) => {
            return Err(
                "audio_feature mel80_wav2lip takes no \"audio\" file and no [generator.audio_onnx]"
                    .into(),
            );
        }
        (AudioFeature::AudioOnnx, Some(af), Some(spec)) => vec![w, check_audio_onnx(af, spec)?],
        (AudioFeature::AudioOnnx, ..) => {
            return Err(
                "audio_feature audio_onnx needs a [[files]] entry with role \"audio\" and a [generator.audio_onnx] table"
                    .into(),
            );
        }
    };
    let prepared_outputs: Vec<&TensorSpec> = match prepare {
        Some(pf) => check_prepare(pf, s)?,
        None => Vec::new(),
    };
    let Some((first, rest)) = file.inputs.split_first() else {
        return Err("generate: declare its inputs (the audio window first)".into());
    };
    if !shape_ok(first, &audio_rest) {
        return Err(format!(
            "generate input {:?} has shape {:?}; {} with window {w} needs [B,{}] (B = -1 or {b})",
            first.name,
            first.shape,
            g.audio_feature,
            audio_rest
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let mut faces = 0;
    for t in rest {
        if let Some(p) = prepared_outputs.iter().find(|p| p.name == t.name) {
            let ok = t.shape.len() == p.shape.len()
                && (t.shape[0] == 1 || batch_ok(t.shape[0]))
                && t.shape[1..] == p.shape[1..];
            if !ok {
                return Err(format!(
                    "generate input {:?} has shape {:?}; prepare's output of that name is {:?} (batch 1 to be broadcast by the model, or -1 / {b} to be tiled)",
                    t.name, t.shape, p.shape
                ));
            }
        } else if shape_ok(t, &[6, s, s]) {
            faces += 1;
        } else {
            return Err(format!(
                "generate input {:?} has shape {:?}; it is neither a prepare output nor the face input [B,6,{s},{s}] (B = -1 or {b})",
                t.name, t.shape
            ));
        }
    }
    if faces > 1 || (faces == 0 && prepare.is_none()) {
        return Err(format!(
            "generate: declare one face input [B,6,{s},{s}] (or, with prepare.onnx, none); {faces} declared"
        ));
    }
    let [out] = file.outputs.as_slice() else {
        return Err(format!(
            "generate: declare 1 output [B,3,{s},{s}], {} declared",
            file.outputs.len()
        ));
    };
    if !shape_ok(out, &[3, s, s]) {
        return Err(format!(
            "generate output {:?} has shape {:?}; needs [B,3,{s},{s}] (B = -1 or {b})",
            out.name, out.shape
        ));
    }
    Ok(())
}

/// `audio.onnx` and `[generator.audio_onnx]`; returns the feature width C.
fn check_audio_onnx(f: &PackFile, spec: &AudioOnnxSpec) -> Result<i64, String> {
    if !(1..=1000).contains(&spec.rate) || !16_000u32.is_multiple_of(spec.rate) {
        return Err(format!(
            "generator.audio_onnx.rate {} must divide 16000 (a whole number of samples per feature frame)",
            spec.rate
        ));
    }
    let hop = spec.hop();
    if !(20..=5000).contains(&spec.chunk_ms) || !spec.chunk_samples().is_multiple_of(hop) {
        return Err(format!(
            "generator.audio_onnx.chunk_ms {} must be within 20..=5000 and a whole number of feature frames ({hop} samples)",
            spec.chunk_ms
        ));
    }
    if spec.context_ms > 5000 || !spec.context_samples().is_multiple_of(hop) {
        return Err(format!(
            "generator.audio_onnx.context_ms {} must be within 0..=5000 and a whole number of feature frames ({hop} samples)",
            spec.context_ms
        ));
    }
    let n = (spec.chunk_samples() + 2 * spec.context_samples()) as i64;
    let t = n / hop as i64;
    match (f.inputs.as_slice(), f.outputs.as_slice()) {
        ([i], [o])
            if i.shape.len() == 2
                && i.shape[0] == 1
                && (i.shape[1] == -1 || i.shape[1] == n)
                && o.shape.len() == 3
                && o.shape[0] == 1
                && (o.shape[1] == -1 || o.shape[1] == t)
                && o.shape[2] > 0 =>
        {
            Ok(o.shape[2])
        }
        _ => Err(format!(
            "audio: declare 1 input [1,{n}] (or [1,-1]) of 16 kHz PCM and 1 output [1,{t},C] (or [1,-1,C]) for chunks of {} ms with {} ms of context",
            spec.chunk_ms, spec.context_ms
        )),
    }
}

/// `prepare.onnx`: one input `[1,3,S,S]` (the crop) or `[1,6,S,S]` (masked and reference), outputs of fixed
/// shapes with batch 1.
fn check_prepare(f: &PackFile, s: i64) -> Result<Vec<&TensorSpec>, String> {
    let [i] = f.inputs.as_slice() else {
        return Err(format!(
            "prepare: declare 1 input [1,3,{s},{s}] or [1,6,{s},{s}], {} declared",
            f.inputs.len()
        ));
    };
    if !(i.shape == [1, 3, s, s] || i.shape == [1, 6, s, s]) {
        return Err(format!(
            "prepare input {:?} has shape {:?}; needs [1,3,{s},{s}] (the crop) or [1,6,{s},{s}] (masked and reference)",
            i.name, i.shape
        ));
    }
    if f.outputs.is_empty() {
        return Err("prepare: declare at least 1 output".into());
    }
    for o in &f.outputs {
        if o.shape.first() != Some(&1) || o.shape.iter().skip(1).any(|&d| d < 1) {
            return Err(format!(
                "prepare output {:?} has shape {:?}; needs batch 1 and fixed dimensions",
                o.name, o.shape
            ));
        }
    }
    Ok(f.outputs.iter().collect())
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, PackError> {
    let io = |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The `models/` folder: `LIPCAST_MODELS_DIR`, else `models/` beside the current directory, else the repository
/// holding the executable (walking up from `target/<profile>/`), else `/opt/lipcast/models`.
pub fn models_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LIPCAST_MODELS_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join("models"));
        // `cargo test` runs in the crate folder (worker/): its workspace's models/ is one level up.
        if let Some(parent) = cwd.parent() {
            dirs.push(parent.join("models"));
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).map(|a| a.join("models")));
    }
    dirs.push(PathBuf::from("/opt/lipcast/models"));
    dirs.into_iter()
        .find(|d| d.join("builtin").join("manifest.toml").is_file())
}

/// The shipped default portrait (`<models dir>/portraits/default.jpg`).
pub fn default_portrait() -> Option<PathBuf> {
    models_dir()
        .map(|d| d.join("portraits").join("default.jpg"))
        .filter(|p| p.is_file())
}
