//! Choosing the audio front end: `AUDIO_FRONTEND=network|dsp`, else the pack's `frontend` (`dsp` for a warp
//! pack that names none: [`crate::model::pack::Manifest::frontend`]). The built-in pack names `network`.

use std::{fmt, str::FromStr};

use super::{DspFrontend, MouthFrontend, NetworkFrontend, network::NetworkError};
pub use crate::model::pack::FrontendKind;
use crate::model::{ModelPack, Runtime};

/// Why a front end cannot be chosen or built.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("invalid AUDIO_FRONTEND {0:?}: expected network or dsp")]
    InvalidKind(String),
    #[error(transparent)]
    Network(#[from] NetworkError),
}

impl FromStr for FrontendKind {
    type Err = FrontendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "network" | "net" | "nn" => Ok(FrontendKind::Network),
            "dsp" => Ok(FrontendKind::Dsp),
            _ => Err(FrontendError::InvalidKind(s.to_string())),
        }
    }
}

impl fmt::Display for FrontendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrontendKind::Network => "network",
            FrontendKind::Dsp => "dsp",
        })
    }
}

impl FrontendKind {
    /// The front end to use: `setting` (`AUDIO_FRONTEND`, when set) wins; otherwise the pack's `frontend`
    /// (validated when the pack loaded).
    pub fn resolve(setting: Option<FrontendKind>, pack: &ModelPack) -> Self {
        setting.unwrap_or_else(|| pack.manifest.frontend())
    }
}

/// Builds the front end `kind`. `network` needs the pack's `mouth` file: a pack without one is an error that says
/// so (and that `AUDIO_FRONTEND=dsp` works without it); `dsp` always works.
pub fn build_frontend(
    kind: FrontendKind,
    runtime: &Runtime,
    pack: &ModelPack,
) -> Result<Box<dyn MouthFrontend>, FrontendError> {
    Ok(match kind {
        FrontendKind::Network => Box::new(NetworkFrontend::load(runtime, pack)?),
        FrontendKind::Dsp => Box::new(DspFrontend::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse() {
        assert_eq!(
            " Network ".parse::<FrontendKind>().unwrap(),
            FrontendKind::Network
        );
        assert_eq!("dsp".parse::<FrontendKind>().unwrap(), FrontendKind::Dsp);
        let e = "wav2lip".parse::<FrontendKind>().unwrap_err();
        assert!(e.to_string().contains("network or dsp"), "{e}");
        assert_eq!(FrontendKind::Network.to_string(), "network");
    }
}
