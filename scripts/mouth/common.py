"""Shared definitions of the mouth network's data: log-mel features, the phoneme-to-viseme table and frame labels.

Everything here has a twin in Rust (`worker/src/audio/network.rs` for the features, `worker/src/eval.rs` reads the
labels this file writes), so change both together; `worker/tests/model_network.rs` checks the features agree.
"""

import numpy as np

SR = 16_000
FPS = 25
FRAME = SR // FPS  # 640 samples per video frame
# Log-mel analysis: 25 ms Hann (symmetric) windows every 10 ms, 512-point FFT, 40 mel bands 60..7600 Hz (HTK
# mel scale), natural log of the band power with a floor. Mel frame j covers samples [160j - 120, 160j + 280),
# i.e. it is centred at 160j + 80, so mel frames 4k..4k+3 are centred inside video frame k.
HOP, WIN, NFFT, NMEL, FMIN, FMAX = 160, 400, 512, 40, 60.0, 7600.0
PRE = 120
LOG_FLOOR = 1e-10
# Network context, in mel frames relative to 4k (the first mel frame of video frame k): 4k-12 .. 4k+7.
CTX_PAST, CTX_FUTURE = 12, 8  # window = CTX_PAST + CTX_FUTURE = 20 mel frames = 200 ms
WINDOW = CTX_PAST + CTX_FUTURE
# Audio needed past the end of video frame k: mel frame 4k+7 ends at 160(4k+7) + 280 = 640k + 1400.
LOOKAHEAD_SAMPLES = 160 * (CTX_FUTURE - 1) + WIN - PRE - FRAME  # 760 = 47.5 ms


def hann():
    i = np.arange(WIN)
    return (0.5 - 0.5 * np.cos(2 * np.pi * i / (WIN - 1))).astype(np.float64)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank():
    """[NMEL, NFFT/2+1] triangular filters, peak 1, on the HTK mel scale."""
    edges = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), NMEL + 2))
    freqs = np.arange(NFFT // 2 + 1) * SR / NFFT
    fb = np.zeros((NMEL, NFFT // 2 + 1))
    for b in range(NMEL):
        lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (freqs - lo) / (c - lo)
        down = (hi - freqs) / (hi - c)
        fb[b] = np.clip(np.minimum(up, down), 0.0, None)
    return fb


_FB = mel_filterbank()
_WINDOW = hann()


def n_video_frames(n_samples):
    return -(-n_samples // FRAME)


def logmel(audio):
    """Log-mel frames for a whole clip (float32 [T, NMEL]), with exactly the padding the streaming Rust code uses:
    PRE zeros before, zeros after so that every video frame's context (up to mel frame 4(K-1)+7) exists."""
    audio = np.clip(np.nan_to_num(np.asarray(audio, np.float64)), -1.0, 1.0)
    k = n_video_frames(len(audio))
    n_mel = 4 * k + CTX_FUTURE
    need = HOP * (n_mel - 1) + WIN
    x = np.zeros(max(need, PRE + len(audio)))
    x[PRE : PRE + len(audio)] = audio
    idx = HOP * np.arange(n_mel)[:, None] + np.arange(WIN)[None, :]
    frames = x[idx] * _WINDOW[None, :]
    spec = np.fft.rfft(frames, n=NFFT, axis=1)
    power = spec.real**2 + spec.imag**2
    mel = power @ _FB.T
    return np.log(np.maximum(mel, LOG_FLOOR)).astype(np.float32)


def floor_frame():
    return np.full(NMEL, np.log(LOG_FLOOR), np.float32)


def windows(feats, n_frames):
    """Network inputs [K, WINDOW, NMEL]: for video frame k, mel frames 4k-12 .. 4k+7; before the clip, the floor
    (what digital silence gives)."""
    pad = np.concatenate([np.tile(floor_frame(), (CTX_PAST, 1)), feats], 0)
    out = np.stack([pad[4 * k : 4 * k + WINDOW] for k in range(n_frames)])
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Phonemes -> mouth targets.
# Parameters: jaw_open 0..1, width -1..1 (spread +), round 0..1, closure 0..1 (1 = lips shut), as in
# worker/src/audio/frontend.rs. One target per IPA symbol; the values are a judgement from articulatory phonetics
# (open vowels open the jaw, /i/ spreads, /u/ /o/ /w/ round, /m b p/ close, /f v/ tuck the lower lip).
REST = (0.0, 0.0, 0.0, 0.0)
VISEME = {
    # bilabials: lips shut. The jaw stays a little open (it follows the neighbouring vowels; the lips do the
    # closing): closure = 1 shuts the lips whatever jaw_open says.
    "p": (0.20, 0.0, 0.0, 1.0), "b": (0.20, 0.0, 0.0, 1.0), "m": (0.20, 0.0, 0.0, 1.0),
    # labiodentals: lower lip to the upper teeth, nearly shut
    "f": (0.15, 0.10, 0.0, 0.55), "v": (0.15, 0.10, 0.0, 0.55),
    # rounded consonants
    "w": (0.12, -0.7, 0.9, 0.0), "ʍ": (0.12, -0.7, 0.9, 0.0),
    "ɹ": (0.20, -0.3, 0.5, 0.0), "r": (0.20, -0.3, 0.5, 0.0), "ɚ": (0.35, -0.2, 0.45, 0.0), "ɝ": (0.35, -0.2, 0.45, 0.0),
    "ʃ": (0.15, -0.3, 0.6, 0.0), "ʒ": (0.15, -0.3, 0.6, 0.0),
    # alveolar / dental: slightly open, teeth close
    "s": (0.08, 0.4, 0.0, 0.0), "z": (0.08, 0.4, 0.0, 0.0),
    "t": (0.18, 0.1, 0.0, 0.0), "d": (0.18, 0.1, 0.0, 0.0), "n": (0.20, 0.1, 0.0, 0.0), "ɾ": (0.22, 0.1, 0.0, 0.0),
    "l": (0.30, 0.1, 0.0, 0.0), "ɫ": (0.30, 0.0, 0.1, 0.0), "θ": (0.20, 0.1, 0.0, 0.0), "ð": (0.20, 0.1, 0.0, 0.0),
    # velar / glottal / palatal
    "k": (0.28, 0.1, 0.0, 0.0), "ɡ": (0.28, 0.1, 0.0, 0.0), "g": (0.28, 0.1, 0.0, 0.0), "ŋ": (0.25, 0.1, 0.0, 0.0),
    "h": (0.35, 0.0, 0.0, 0.0), "ʔ": (0.15, 0.0, 0.0, 0.0), "x": (0.28, 0.0, 0.0, 0.0), "ç": (0.2, 0.3, 0.0, 0.0),
    "j": (0.15, 0.5, 0.0, 0.0),
    # vowels: front spread, back rounded, open low
    "i": (0.22, 0.85, 0.0, 0.0), "ɪ": (0.30, 0.55, 0.0, 0.0), "ᵻ": (0.30, 0.4, 0.0, 0.0), "ɨ": (0.30, 0.3, 0.0, 0.0),
    "e": (0.42, 0.55, 0.0, 0.0), "ɛ": (0.55, 0.45, 0.0, 0.0), "æ": (0.75, 0.45, 0.0, 0.0),
    "a": (0.90, 0.15, 0.0, 0.0), "ɑ": (0.90, 0.0, 0.0, 0.0), "ɒ": (0.80, -0.2, 0.3, 0.0),
    "ʌ": (0.60, 0.1, 0.0, 0.0), "ɐ": (0.60, 0.1, 0.0, 0.0), "ə": (0.40, 0.0, 0.0, 0.0), "ɜ": (0.45, 0.0, 0.1, 0.0),
    "ɔ": (0.65, -0.4, 0.6, 0.0), "o": (0.45, -0.5, 0.8, 0.0), "ɵ": (0.4, -0.3, 0.5, 0.0),
    "ʊ": (0.32, -0.5, 0.7, 0.0), "u": (0.22, -0.85, 1.0, 0.0), "ʉ": (0.22, -0.7, 0.9, 0.0),
}
SILENCE = {"", "pau", "sil", "_", ",", ".", "!", "?", ";", ":", "^", "$", "—", "…", "h#", "#"}
BILABIALS = {"p", "b", "m"}
# Symbols without their own mouth shape: stress and length marks, tie bars, syllabicity.
MODIFIERS = set("ˈˌːˑ̩͡‿̪̃ʲ:") | {"\u0329", "\u0361"}

# Festival's radio phone set (ARPAbet) in IPA.
ARPA = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ax": "ə", "axr": "ɚ", "ay": "aɪ", "eh": "ɛ", "er": "ɝ",
    "ey": "eɪ", "ih": "ɪ", "iy": "i", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "u", "b": "b", "ch": "tʃ", "d": "d",
    "dh": "ð", "f": "f", "g": "ɡ", "hh": "h", "jh": "dʒ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ",
    "p": "p", "r": "ɹ", "s": "s", "sh": "ʃ", "t": "t", "th": "θ", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "ʒ",
    "dx": "ɾ", "el": "əl", "em": "əm", "en": "ən", "pau": "pau", "h#": "pau", "brth": "pau",
}


def split_phone(ipa, start, end):
    """One phone (possibly a diphthong/affricate like 'aɪ', 'tʃ', 'əl') -> [(symbol, start, end)], the first part
    taking 60% of the time (the nucleus of a diphthong, the closure of an affricate)."""
    syms = [c for c in ipa if c not in MODIFIERS]
    if ipa in SILENCE or not syms:
        return [("pau" if ipa in SILENCE else "?", start, end)]
    if len(syms) == 1:
        return [(syms[0], start, end)]
    mid = start + 0.6 * (end - start)
    rest = syms[1:]
    out = [(syms[0], start, mid)]
    step = (end - mid) / len(rest)
    for i, s in enumerate(rest):
        out.append((s, mid + i * step, mid + (i + 1) * step))
    return out


def target_of(sym):
    if sym in SILENCE or sym == "pau":
        return REST
    return VISEME.get(sym, (0.25, 0.0, 0.0, 0.0))


# Coarticulation: the piecewise-constant targets (1 ms grid) are smoothed with a Gaussian (sigma 22 ms for jaw,
# width and rounding; 10 ms for closure, whose short bilabial gestures must survive), then each video frame takes
# the mean of jaw/width/round over its 40 ms and the maximum of closure (a frame in which the lips meet shows them
# meeting). Bilabials dominate: during /m b p/ closure is forced to 1 before smoothing whatever the neighbours.
SIGMA_MS = (22.0, 22.0, 22.0, 10.0)


def _gauss(x, sigma):
    r = int(3 * sigma)
    t = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    xp = np.pad(x, (r, r), mode="edge")
    return np.convolve(xp, k, mode="valid")


def frame_targets(segments, n_frames):
    """segments: [(symbol, start_s, end_s)] (single symbols, see split_phone); returns float32 [n_frames, 4]."""
    n_ms = n_frames * 40
    grid = np.zeros((4, n_ms))
    for sym, s, e in segments:
        a, b = int(round(s * 1000)), int(round(e * 1000))
        a, b = max(a, 0), min(b, n_ms)
        if b <= a:
            continue
        grid[:, a:b] = np.array(target_of(sym))[:, None]
    smooth = np.stack([_gauss(grid[i], SIGMA_MS[i]) for i in range(4)])
    out = np.zeros((n_frames, 4), np.float32)
    for k in range(n_frames):
        seg = smooth[:, 40 * k : 40 * k + 40]
        out[k, :3] = seg[:3].mean(axis=1)
        out[k, 3] = seg[3].max()
    return out


def merge_segments(segs):
    """Normalise a phone list: split multi-symbol phones, drop empty ones."""
    out = []
    for ph, s, e in segs:
        if e <= s:
            continue
        out.extend(split_phone(ph, s, e))
    return out
