//! The interface between audio and the renderer: 16 kHz mono PCM in, mouth parameters out at the video rate.
//! The DSP front end ([`super::dsp::DspFrontend`]) implements it; the trained network will too.

/// Sample rate every front end takes.
pub const SAMPLE_RATE: u32 = 16_000;
/// Mouth parameters per second (the video frame rate).
pub const PARAMS_PER_SECOND: u32 = 25;
/// Samples per video frame (40 ms).
pub const SAMPLES_PER_FRAME: usize = (SAMPLE_RATE / PARAMS_PER_SECOND) as usize;

/// Mouth shape for one video frame. All zero = mouth at rest (closed, as in the portrait).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MouthParams {
    /// Jaw opening, 0 (closed) ..= 1 (wide open, about a ninth of the face height).
    pub jaw_open: f32,
    /// Lip spread, -1 (narrowed) ..= 1 (spread, as in /i/); 0 neutral.
    pub width: f32,
    /// Lip rounding / protrusion (as in /u/, /o/), 0 ..= 1.
    pub round: f32,
    /// Lip closure / pressing (as in /m/, /b/, /p/), 0 ..= 1; 1 closes the lips whatever `jaw_open` says.
    pub closure: f32,
}

impl MouthParams {
    pub const REST: MouthParams = MouthParams {
        jaw_open: 0.0,
        width: 0.0,
        round: 0.0,
        closure: 0.0,
    };

    /// The same parameters clamped to their documented ranges (NaN becomes 0).
    pub fn clamped(self) -> Self {
        let c = |v: f32, lo: f32, hi: f32| if v.is_nan() { 0.0 } else { v.clamp(lo, hi) };
        Self {
            jaw_open: c(self.jaw_open, 0.0, 1.0),
            width: c(self.width, -1.0, 1.0),
            round: c(self.round, 0.0, 1.0),
            closure: c(self.closure, 0.0, 1.0),
        }
    }

    /// How far the lips are apart, 0..=1, once closure is applied.
    pub fn opening(&self) -> f32 {
        let p = self.clamped();
        p.jaw_open * (1.0 - p.closure)
    }
}

/// Audio -> mouth parameters, streaming.
///
/// Push PCM as it arrives; pop one [`MouthParams`] per 40 ms frame once the front end has heard
/// `lookahead_ms()` past the end of that frame. [`MouthFrontend::flush`] releases the remaining frames at the end
/// of an utterance (as if followed by silence).
pub trait MouthFrontend: Send {
    /// Appends 16 kHz mono samples in [-1, 1].
    fn push(&mut self, pcm: &[f32]);
    /// The next frame's parameters, if enough audio has arrived.
    fn pop(&mut self) -> Option<MouthParams>;
    /// Audio needed past the end of a frame before that frame can be popped, milliseconds.
    fn lookahead_ms(&self) -> f32;
    /// Treats the input as ended: pads with silence so every pushed frame can be popped.
    fn flush(&mut self);
    /// Forgets everything (e.g. on `lk.clear_buffer`); the next frame starts from rest.
    fn reset(&mut self);
    /// Number of frames ready to pop.
    fn ready(&self) -> usize;
}
