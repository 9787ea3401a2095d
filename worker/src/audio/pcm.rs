//! The 16 kHz PCM a streaming front end holds while it analyses it, addressed by internal sample index: the
//! first `pre` samples are leading silence (so the first frame's analysis window has a past), and samples every
//! later window has passed are dropped as the front end moves on.

pub(crate) struct PcmBuffer {
    /// `buf[0]` is internal sample `start`.
    buf: Vec<f32>,
    start: usize,
    /// Samples pushed since the last clear (external count, without `pre`).
    pushed: usize,
    pre: usize,
}

impl PcmBuffer {
    pub(crate) fn new(pre: usize) -> Self {
        Self {
            buf: vec![0.0; pre],
            start: 0,
            pushed: 0,
            pre,
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::new(self.pre);
    }

    /// Appends PCM, [`sanitize`]d.
    pub(crate) fn push(&mut self, pcm: &[f32]) {
        self.buf.extend(pcm.iter().copied().map(sanitize));
        self.pushed += pcm.len();
    }

    pub(crate) fn pushed(&self) -> usize {
        self.pushed
    }

    /// Internal samples `a..b`, if all of them have arrived.
    pub(crate) fn window(&self, a: usize, b: usize) -> Option<&[f32]> {
        (b <= self.start + self.buf.len()).then(|| &self.buf[a - self.start..b - self.start])
    }

    /// Forgets the samples before internal sample `sample` (no later window needs them).
    pub(crate) fn discard_before(&mut self, sample: usize) {
        if sample > self.start {
            let n = (sample - self.start).min(self.buf.len());
            self.buf.drain(..n);
            self.start += n;
        }
    }

    /// Pads with silence up to internal sample `end`; true when it added any.
    pub(crate) fn pad_to(&mut self, end: usize) -> bool {
        let have = self.start + self.buf.len();
        if end > have {
            self.buf.resize(self.buf.len() + end - have, 0.0);
            true
        } else {
            false
        }
    }
}

/// A sample as the front ends analyse it: non-finite becomes silence, the rest is clamped to [-1, 1].
pub(crate) fn sanitize(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}
