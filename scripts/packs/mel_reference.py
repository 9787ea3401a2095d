#!/usr/bin/env python3
"""Reference computation of `mel80_wav2lip` in numpy, written from librosa 0.7.0's documented formulas (the
version Wav2Lip's requirements pin) and Wav2Lip's audio.py/hparams.py, independently of the Rust code
(`worker/src/audio/mel80.rs`). It writes the fixture `worker/tests/fixtures/mel80/reference.json`, which
`worker/tests/model_generator.rs` compares against the Rust implementation.

librosa itself is not used: 0.7.0 does not install on Python 3.11 (its numba pin), and later versions changed
`stft`'s default padding from `reflect` to `constant`. The formulas followed, step by step:

- pre-emphasis: scipy.signal.lfilter([1, -0.97], [1], x) = x[n] - 0.97 x[n-1], x[-1] = 0;
- librosa.stft(y, n_fft=800, hop_length=200, win_length=800) with 0.7.0's defaults: window 'hann' from
  scipy.signal.get_window(fftbins=True) (periodic), center=True, pad_mode='reflect' (np.pad, 400 each side),
  frames = 1 + (len(padded) - 800) // 200, rfft of each windowed frame;
- magnitude |D| (Wav2Lip passes np.abs(D), power 1);
- librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) with htk=False (Slaney scale:
  linear below 1 kHz at 200/3 Hz per mel, logarithmic above with step ln(6.4)/27) and norm=1 (each triangle
  scaled by 2 / (f[i+2] - f[i]));
- Wav2Lip: S = 20 log10(max(1e-5, mel)) - 20; clip((2 * 4) * ((S + 100) / 100) - 4, -4, 4).

    python scripts/packs/mel_reference.py [OUT.json]    (needs numpy only)
"""

import json
import pathlib
import sys

import numpy as np

SR, N_FFT, HOP, N_MELS, FMIN, FMAX = 16000, 800, 200, 80, 55.0, 7600.0


def hz_to_mel(f):
    f = np.asanyarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    mels = f / f_sp
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    mels = np.where(log_t, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mels)
    return mels


def mel_to_hz(m):
    m = np.asanyarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_basis():
    fftfreqs = np.linspace(0, SR / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((N_MELS, len(fftfreqs)))
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return weights


def melspectrogram(x):
    x = np.asarray(x, dtype=np.float64)
    y = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    padded = np.pad(y, N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    frames = np.stack([padded[j * HOP:j * HOP + N_FFT] * window for j in range(n_frames)])
    mag = np.abs(np.fft.rfft(frames, axis=1)).T  # [401, T]
    s = 20 * np.log10(np.maximum(1e-5, mel_basis() @ mag)) - 20
    return np.clip(8 * ((s + 100) / 100) - 4, -4, 4)  # [80, T]


def test_signal():
    """0.55 s of a voiced, amplitude-modulated harmonic tone with seeded noise, then 0.1 s of silence."""
    rng = np.random.default_rng(9)
    t = np.arange(int(0.55 * SR)) / SR
    f0 = 140 + 30 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * 0.25
    sig = voiced * env + 0.01 * rng.standard_normal(len(t))
    sig = np.concatenate([sig, np.zeros(int(0.1 * SR))])
    return np.round(np.clip(sig, -1, 1) * 32767).astype(np.int16)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                       pathlib.Path(__file__).resolve().parents[2] / "worker/tests/fixtures/mel80/reference.json")
    pcm = test_signal()
    mel = melspectrogram(pcm.astype(np.float64) / 32768.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "about": "mel80_wav2lip reference (scripts/packs/mel_reference.py: numpy, librosa 0.7.0 formulas)",
        "pcm_i16": pcm.tolist(),
        "pcm_scale": 32768.0,
        "mel": [[round(float(v), 6) for v in row] for row in mel.T],  # [T][80]
    }))
    print(f"{out}: {len(pcm)} samples -> {mel.shape[1]} mel frames, range {mel.min():.3f}..{mel.max():.3f}")


if __name__ == "__main__":
    main()
