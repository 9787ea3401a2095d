//! `generate.onnx` on ONNX Runtime: loaded through the worker's [`Runtime`] (device, threads, CUDA fallback),
//! its tensor names checked against the manifest, called with batches of mel windows and face inputs.

use ndarray::{ArrayView, IxDyn};
use ort::{session::Session, value::TensorRef};

use crate::model::{ModelPack, Runtime, pack::GeneratorSpec};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Pack(#[from] crate::model::PackError),
    #[error("{0}")]
    Runtime(#[from] crate::model::RuntimeError),
    #[error("generate.onnx: {0}")]
    Contract(String),
    #[error("generate.onnx inference: {0}")]
    Inference(String),
}

/// The generator model of a pack.
pub struct GenerateModel {
    session: Session,
    mel: String,
    face: String,
    out: String,
    /// Frames per call; a model with a fixed batch dimension gets partial batches padded to it.
    pub batch: usize,
    fixed_batch: bool,
    pub face_size: usize,
    pub window: usize,
    pub load_ms: f64,
}

impl GenerateModel {
    pub fn load(
        runtime: &Runtime,
        pack: &ModelPack,
        g: &GeneratorSpec,
    ) -> Result<Self, GenerateError> {
        let file = pack.file("generate")?;
        let loaded = runtime.load(&pack.path("generate")?)?;
        let (mel, face, out) = match (file.inputs.as_slice(), file.outputs.as_slice()) {
            ([m, f], [o]) => (m, f, o),
            _ => {
                return Err(GenerateError::Contract(
                    "the manifest must declare 2 inputs and 1 output".into(),
                ));
            }
        };
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
        for want in [&mel.name, &face.name] {
            if !inputs.contains(want) {
                return Err(GenerateError::Contract(format!(
                    "the manifest declares input {want:?} but the ONNX file's inputs are {inputs:?}"
                )));
            }
        }
        if inputs.len() != 2 {
            return Err(GenerateError::Contract(format!(
                "the ONNX file has inputs {inputs:?}; the contract has exactly two (mel, face)"
            )));
        }
        if !outputs.contains(&out.name) {
            return Err(GenerateError::Contract(format!(
                "the manifest declares output {:?} but the ONNX file's outputs are {outputs:?}",
                out.name
            )));
        }
        Ok(Self {
            session,
            mel: mel.name.clone(),
            face: face.name.clone(),
            out: out.name.clone(),
            batch: g.batch_size as usize,
            fixed_batch: mel.shape[0] != -1 || face.shape[0] != -1,
            face_size: g.face_size as usize,
            window: g.audio_window as usize,
            load_ms: loaded.load_ms,
        })
    }

    /// Runs `n` frames (1..=batch): `mel` holds `n` windows `[1, 80, W]`, `face` `n` inputs `[6, S, S]`. Returns
    /// `n` crops `[3, S, S]`, concatenated.
    pub fn run(
        &mut self,
        n: usize,
        mel: &mut Vec<f32>,
        face: &mut Vec<f32>,
    ) -> Result<Vec<f32>, GenerateError> {
        let (s, w) = (self.face_size, self.window);
        let (mel_len, face_len) = (80 * w, 6 * s * s);
        if n == 0 || n > self.batch || mel.len() != n * mel_len || face.len() != n * face_len {
            return Err(GenerateError::Inference(format!("bad batch of {n} frames")));
        }
        // A fixed batch dimension needs full batches: repeat the last frame.
        let b = if self.fixed_batch { self.batch } else { n };
        for _ in n..b {
            mel.extend_from_within((n - 1) * mel_len..n * mel_len);
            face.extend_from_within((n - 1) * face_len..n * face_len);
        }
        let err = |e: ort::Error| GenerateError::Inference(e.to_string());
        let mel_view = ArrayView::from_shape(IxDyn(&[b, 1, 80, w]), mel.as_slice())
            .map_err(|e| GenerateError::Inference(e.to_string()))?;
        let face_view = ArrayView::from_shape(IxDyn(&[b, 6, s, s]), face.as_slice())
            .map_err(|e| GenerateError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![
                self.mel.as_str() => TensorRef::from_array_view(mel_view).map_err(err)?,
                self.face.as_str() => TensorRef::from_array_view(face_view).map_err(err)?,
            ])
            .map_err(err)?;
        let (shape, data) = outputs[self.out.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(err)?;
        let want = [b as i64, 3, s as i64, s as i64];
        if shape.as_ref() != want {
            return Err(GenerateError::Inference(format!(
                "output {:?} has shape {:?}, the contract says {want:?}",
                self.out,
                shape.as_ref()
            )));
        }
        mel.truncate(n * mel_len);
        face.truncate(n * face_len);
        Ok(data[..n * 3 * s * s].to_vec())
    }
}
