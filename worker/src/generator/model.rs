//! The ONNX files of a generator pack on ONNX Runtime, loaded through the worker's [`Runtime`] (device, threads,
//! CUDA fallback) with their tensor names checked against the manifest: `generate.onnx` (batches of audio
//! windows plus the portrait's constant inputs), `audio.onnx` (PCM chunks to features) and `prepare.onnx`
//! (once per portrait: the crop to cached tensors).

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use ndarray::{ArrayView, IxDyn};
use ort::{session::Session, value::TensorRef};

use crate::model::{FileRole, ModelPack, Runtime, pack::GeneratorSpec, pack::PackFile};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Pack(#[from] crate::model::PackError),
    #[error("{0}")]
    Runtime(#[from] crate::model::RuntimeError),
    #[error("{file}: {reason}")]
    Contract { file: String, reason: String },
    #[error("{file} inference: {reason}")]
    Inference { file: String, reason: String },
}

fn contract(file: &str, reason: String) -> GenerateError {
    GenerateError::Contract {
        file: file.into(),
        reason,
    }
}

fn inference(file: &str, reason: impl ToString) -> GenerateError {
    GenerateError::Inference {
        file: file.into(),
        reason: reason.to_string(),
    }
}

/// Loads `role`'s file and checks that the ONNX file has exactly the inputs the manifest declares and the
/// declared outputs.
fn load_checked(
    runtime: &Runtime,
    pack: &ModelPack,
    role: FileRole,
) -> Result<(Session, PackFile, f64), GenerateError> {
    let file = pack.file(role)?.clone();
    let loaded = runtime.load(&pack.path(role)?)?;
    let session = loaded.session;
    let inputs: Vec<String> = session
        .inputs()
        .iter()
        .map(|i| i.name().to_string())
        .collect();
    let outputs: Vec<String> = session
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    for want in &file.inputs {
        if !inputs.contains(&want.name) {
            return Err(contract(
                &file.path,
                format!(
                    "the manifest declares input {:?} but the ONNX file's inputs are {inputs:?}",
                    want.name
                ),
            ));
        }
    }
    if inputs.len() != file.inputs.len() {
        return Err(contract(
            &file.path,
            format!(
                "the ONNX file has inputs {inputs:?}; the manifest declares {}",
                file.inputs.len()
            ),
        ));
    }
    for want in &file.outputs {
        if !outputs.contains(&want.name) {
            return Err(contract(
                &file.path,
                format!(
                    "the manifest declares output {:?} but the ONNX file's outputs are {outputs:?}",
                    want.name
                ),
            ));
        }
    }
    Ok((session, file, loaded.load_ms))
}

/// Where a constant (per-portrait) input of `generate.onnx` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `[6, S, S]` masked-and-reference face input.
    Face,
    /// Output `k` of `prepare.onnx`.
    Prepare(usize),
}

/// A per-portrait input of `generate.onnx`.
#[derive(Debug, Clone)]
struct ConstInput {
    name: String,
    source: Source,
    /// Shape of one frame's value (without the batch dimension).
    rest: Vec<usize>,
    /// Declared batch 1 with B > 1: fed once, the model broadcasts it; else tiled over the batch.
    once: bool,
}

/// The generator model of a pack.
pub struct GenerateModel {
    session: Session,
    audio: String,
    consts: Vec<ConstInput>,
    out: String,
    /// Frames per call; a model with a fixed batch dimension gets partial batches padded to it.
    pub batch: usize,
    fixed_batch: bool,
    pub face_size: usize,
    pub window: usize,
    /// Shape of one frame's audio window (`[1, 80, W]` or `[W, C]`).
    audio_rest: Vec<usize>,
    pub load_ms: f64,
}

impl GenerateModel {
    pub fn load(
        runtime: &Runtime,
        pack: &ModelPack,
        g: &GeneratorSpec,
    ) -> Result<Self, GenerateError> {
        let (session, file, load_ms) = load_checked(runtime, pack, FileRole::Generate)?;
        let prepare_outputs = pack
            .file(FileRole::Prepare)
            .map(|f| f.outputs.clone())
            .unwrap_or_default();
        let ([audio, rest @ ..], [out]) = (file.inputs.as_slice(), file.outputs.as_slice()) else {
            return Err(contract(
                &file.path,
                "the manifest must declare the audio input first and 1 output".into(),
            ));
        };
        let dims = |shape: &[i64]| shape[1..].iter().map(|&d| d.max(0) as usize).collect();
        let b = g.batch_size as usize;
        let consts = rest
            .iter()
            .map(|t| ConstInput {
                name: t.name.clone(),
                source: prepare_outputs
                    .iter()
                    .position(|p| p.name == t.name)
                    .map_or(Source::Face, Source::Prepare),
                rest: dims(&t.shape),
                once: t.shape[0] == 1 && b > 1,
            })
            .collect();
        let fixed_batch = file
            .inputs
            .iter()
            .any(|t| t.shape[0] != -1 && !(t.shape[0] == 1 && b > 1));
        Ok(Self {
            session,
            audio: audio.name.clone(),
            consts,
            out: out.name.clone(),
            batch: b,
            fixed_batch,
            face_size: g.face_size as usize,
            window: g.audio_window as usize,
            audio_rest: dims(&audio.shape),
            load_ms,
        })
    }

    /// Floats of one frame's audio window.
    pub fn window_len(&self) -> usize {
        self.audio_rest.iter().product()
    }

    /// The sources of the per-portrait inputs, in the order [`GenerateModel::run`] takes them.
    pub fn sources(&self) -> Vec<Source> {
        self.consts.iter().map(|c| c.source).collect()
    }

    /// Runs `n` frames (1..=batch): `audio` holds `n` windows, `portrait` one value per constant input (in
    /// [`GenerateModel::sources`] order, for one frame), tiled here over the batch. Returns `n` crops
    /// `[3, S, S]`, concatenated.
    pub fn run(
        &mut self,
        n: usize,
        audio: &mut Vec<f32>,
        portrait: &[Vec<f32>],
    ) -> Result<Vec<f32>, GenerateError> {
        const FILE: &str = "generate.onnx";
        let s = self.face_size;
        let wl = self.window_len();
        if n == 0 || n > self.batch || audio.len() != n * wl || portrait.len() != self.consts.len()
        {
            return Err(inference(FILE, format!("bad batch of {n} frames")));
        }
        // A fixed batch dimension needs full batches: repeat the last frame.
        let b = if self.fixed_batch { self.batch } else { n };
        for _ in n..b {
            audio.extend_from_within((n - 1) * wl..n * wl);
        }
        let mut tiled: Vec<(Vec<usize>, Vec<f32>)> = Vec::with_capacity(self.consts.len());
        for (c, v) in self.consts.iter().zip(portrait) {
            let rows = if c.once { 1 } else { b };
            if v.len() != c.rest.iter().product::<usize>() {
                return Err(inference(
                    FILE,
                    format!("input {:?} got {} values", c.name, v.len()),
                ));
            }
            let mut shape = vec![rows];
            shape.extend_from_slice(&c.rest);
            tiled.push((shape, v.repeat(rows)));
        }
        let mut shape = vec![b];
        shape.extend_from_slice(&self.audio_rest);
        let audio_view = ArrayView::from_shape(IxDyn(&shape), audio.as_slice())
            .map_err(|e| inference(FILE, e))?;
        let mut inputs: Vec<(String, TensorRef<'_, f32>)> = Vec::with_capacity(1 + tiled.len());
        inputs.push((
            self.audio.clone(),
            TensorRef::from_array_view(audio_view).map_err(|e| inference(FILE, e))?,
        ));
        for (c, (shape, data)) in self.consts.iter().zip(&tiled) {
            let view = ArrayView::from_shape(IxDyn(shape), data.as_slice())
                .map_err(|e| inference(FILE, e))?;
            inputs.push((
                c.name.clone(),
                TensorRef::from_array_view(view).map_err(|e| inference(FILE, e))?,
            ));
        }
        let outputs = self.session.run(inputs).map_err(|e| inference(FILE, e))?;
        let (shape, data) = outputs[self.out.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| inference(FILE, e))?;
        let want = [b as i64, 3, s as i64, s as i64];
        if shape.as_ref() != want {
            return Err(inference(
                FILE,
                format!(
                    "output {:?} has shape {:?}, the contract says {want:?}",
                    self.out,
                    shape.as_ref()
                ),
            ));
        }
        let out = data[..n * 3 * s * s].to_vec();
        drop(outputs);
        audio.truncate(n * wl);
        Ok(out)
    }
}

/// `audio.onnx`: 16 kHz PCM `[1, N]` to features `[1, T, C]`, N = T * hop.
pub struct AudioModel {
    session: Session,
    input: String,
    output: String,
    /// Feature width C.
    pub channels: usize,
    /// Samples per feature frame.
    pub hop: usize,
    pub load_ms: f64,
}

impl AudioModel {
    pub fn load(
        runtime: &Runtime,
        pack: &ModelPack,
        g: &GeneratorSpec,
    ) -> Result<Self, GenerateError> {
        let (session, file, load_ms) = load_checked(runtime, pack, FileRole::Audio)?;
        let spec = g
            .audio_onnx
            .ok_or_else(|| contract(&file.path, "needs a [generator.audio_onnx] table".into()))?;
        let ([i], [o]) = (file.inputs.as_slice(), file.outputs.as_slice()) else {
            return Err(contract(&file.path, "declare 1 input and 1 output".into()));
        };
        Ok(Self {
            session,
            input: i.name.clone(),
            output: o.name.clone(),
            channels: o.shape.get(2).copied().unwrap_or(0).max(0) as usize,
            hop: spec.hop(),
            load_ms,
        })
    }

    /// Features `[T, C]` of `pcm` (a whole number of hops), row-major.
    pub fn run(&mut self, pcm: &[f32]) -> Result<Vec<f32>, GenerateError> {
        const FILE: &str = "audio.onnx";
        let view =
            ArrayView::from_shape(IxDyn(&[1, pcm.len()]), pcm).map_err(|e| inference(FILE, e))?;
        let outputs = self
            .session
            .run(ort::inputs![
                self.input.as_str() => TensorRef::from_array_view(view).map_err(|e| inference(FILE, e))?,
            ])
            .map_err(|e| inference(FILE, e))?;
        let (shape, data) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| inference(FILE, e))?;
        let want = [1, (pcm.len() / self.hop) as i64, self.channels as i64];
        if shape.as_ref() != want {
            return Err(inference(
                FILE,
                format!(
                    "output {:?} has shape {:?} for {} samples, the contract says {want:?}",
                    self.output,
                    shape.as_ref(),
                    pcm.len()
                ),
            ));
        }
        Ok(data.to_vec())
    }
}

/// `prepare.onnx`: the portrait's crop to tensors fed to every `generate.onnx` call. Results are cached per
/// crop (the last few portraits), so a portrait is prepared once however many sessions use it.
pub struct PrepareModel {
    session: Session,
    input: String,
    /// 3: the crop; 6: masked and reference (the face input layout).
    pub channels: usize,
    outputs: Vec<(String, Vec<i64>)>,
    cache: VecDeque<(u64, Vec<Vec<f32>>)>,
    /// Calls made (cache misses), for tests and figures.
    pub calls: u64,
    /// Duration of the last call (a cache miss), ms.
    pub run_ms: f64,
    pub load_ms: f64,
}

impl PrepareModel {
    const CACHED: usize = 4;

    pub fn load(runtime: &Runtime, pack: &ModelPack) -> Result<Self, GenerateError> {
        let (session, file, load_ms) = load_checked(runtime, pack, FileRole::Prepare)?;
        let [i] = file.inputs.as_slice() else {
            return Err(contract(&file.path, "declare 1 input".into()));
        };
        Ok(Self {
            session,
            input: i.name.clone(),
            channels: i.shape.get(1).copied().unwrap_or(3).max(0) as usize,
            outputs: file
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.shape.clone()))
                .collect(),
            cache: VecDeque::new(),
            calls: 0,
            run_ms: 0.0,
            load_ms,
        })
    }

    /// The outputs (without their batch dimension of 1) for a `[6, S, S]` face input: its channels 3-5 (the
    /// crop) for a 3-channel input, all of it for a 6-channel one.
    pub fn run(&mut self, face6: &[f32], s: usize) -> Result<Vec<Vec<f32>>, GenerateError> {
        const FILE: &str = "prepare.onnx";
        let mut h = std::collections::hash_map::DefaultHasher::new();
        face6.len().hash(&mut h);
        for v in face6 {
            v.to_bits().hash(&mut h);
        }
        let key = h.finish();
        if let Some((_, v)) = self.cache.iter().find(|(k, _)| *k == key) {
            return Ok(v.clone());
        }
        let t0 = std::time::Instant::now();
        let data = if self.channels == 3 {
            &face6[3 * s * s..]
        } else {
            face6
        };
        let view = ArrayView::from_shape(IxDyn(&[1, self.channels, s, s]), data)
            .map_err(|e| inference(FILE, e))?;
        let outputs = self
            .session
            .run(ort::inputs![
                self.input.as_str() => TensorRef::from_array_view(view).map_err(|e| inference(FILE, e))?,
            ])
            .map_err(|e| inference(FILE, e))?;
        let mut result = Vec::with_capacity(self.outputs.len());
        for (name, want) in &self.outputs {
            let (shape, data) = outputs[name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| inference(FILE, e))?;
            if shape.as_ref() != want.as_slice() {
                return Err(inference(
                    FILE,
                    format!(
                        "output {name:?} has shape {:?}, the manifest says {want:?}",
                        shape.as_ref()
                    ),
                ));
            }
            result.push(data.to_vec());
        }
        self.calls += 1;
        self.run_ms = t0.elapsed().as_secs_f64() * 1e3;
        if self.cache.len() == Self::CACHED {
            self.cache.pop_front();
        }
        self.cache.push_back((key, result.clone()));
        Ok(result)
    }
}
