"""Trains the mouth network (JAX, CPU), exports it to ONNX, checks the export against JAX and writes the held-out
set and the test fixtures.

    python scripts/mouth/train.py --data data/mouth

Writes (paths relative to the repository root):
    models/builtin/mouth_net.onnx            the network (input "mel" [N,20,40] log-mel, output "mouth" [N,4])
    models/eval/mouth-heldout/               held-out voice: 16-bit 16 kHz WAVs + heldout.json (phones, targets)
    worker/tests/fixtures/mouth/             parity fixture: Python log-mel of one clip (f32 LE) + JAX outputs
    data/mouth/train_report.json             losses, timings, parameter count
"""

import argparse
import json
import os
import pickle
import sys
import time
import wave

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from common import (  # noqa: E402
    CTX_PAST, FRAME, LOOKAHEAD_SAMPLES, NMEL, SR, WINDOW, frame_targets, logmel, merge_segments, n_video_frames,
    windows,
)

CH, HID = 64, 32
# Output activations: jaw, round, closure in 0..1 (sigmoid), width in -1..1 (tanh(x) = 2 sigmoid(2x) - 1).
OUT_SCALE = np.array([1.0, 2.0, 1.0, 1.0], np.float32)
OUT_MUL = np.array([1.0, 2.0, 1.0, 1.0], np.float32)
OUT_ADD = np.array([0.0, -1.0, 0.0, 0.0], np.float32)
LOSS_W = jnp.array([1.0, 0.5, 0.7, 1.5])


def init(key):
    ks = jax.random.split(key, 5)

    def he(k, shape, fan_in):
        return jax.random.normal(k, shape) * np.sqrt(2.0 / fan_in)

    t3 = ((WINDOW - 2) - 3) // 2 + 1
    t3 = (t3 - 3) // 2 + 1
    return {
        "c1": he(ks[0], (CH, NMEL, 3), NMEL * 3), "b1": jnp.zeros(CH),
        "c2": he(ks[1], (CH, CH, 3), CH * 3), "b2": jnp.zeros(CH),
        "c3": he(ks[2], (CH, CH, 3), CH * 3), "b3": jnp.zeros(CH),
        "d1": he(ks[3], (CH * t3, HID), CH * t3), "e1": jnp.zeros(HID),
        "d2": jax.random.normal(ks[4], (HID, 4)) * 0.01, "e2": jnp.zeros(4),
    }


def conv(x, w, b, stride):
    y = jax.lax.conv_general_dilated(x, w, (stride,), "VALID", dimension_numbers=("NCH", "OIH", "NCH"))
    return y + b[None, :, None]


def forward(p, x, mu, sd):
    """x: [B, WINDOW, NMEL] log-mel -> [B, 4] mouth parameters."""
    h = ((x - mu) / sd).transpose(0, 2, 1)  # [B, NMEL, T]
    h = jax.nn.relu(conv(h, p["c1"], p["b1"], 1))
    h = jax.nn.relu(conv(h, p["c2"], p["b2"], 2))
    h = jax.nn.relu(conv(h, p["c3"], p["b3"], 2))
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ p["d1"] + p["e1"])
    z = h @ p["d2"] + p["e2"]
    return jax.nn.sigmoid(z * OUT_SCALE) * OUT_MUL + OUT_ADD


def loss_fn(p, x, y, mu, sd):
    out = forward(p, x, mu, sd)
    # Frames where the lips must close (bilabials) weigh six times: they are ~10% of the frames and the
    # shape a viewer checks first.
    w = 1.0 + 5.0 * (y[:, 3] > 0.5)
    l = jnp.mean(jnp.sum(((out - y) ** 2) * LOSS_W, axis=1) * w) / 4
    open_p = out[:, 0] * (1 - out[:, 3])
    open_t = y[:, 0] * (1 - y[:, 3])
    return l + jnp.mean(w * (open_p - open_t) ** 2)


def n_params(p):
    return int(sum(np.prod(v.shape) for v in p.values()))


# ------------------------------------------------------------------------------------------------------- data
# Speed / vocal-tract-length perturbation: resampling by up/down stretches time and shifts every formant.
# (4, 5) raises every formant by 25%: roughly a male voice's formants moved to a female's.
WARPS = [(1, 1), (1, 1), (9, 10), (10, 9), (19, 20), (20, 19), (8, 9), (9, 8), (11, 12), (12, 11), (5, 6), (4, 5)]


def labelled(utt, lead, tail, warp=(1, 1)):
    """Audio with `lead`/`tail` samples of silence around it (optionally resampled by `warp` = (up, down)) and its
    frame targets."""
    audio = np.concatenate([np.zeros(lead, np.float32), utt["audio"], np.zeros(tail, np.float32)])
    off = lead / SR
    phones = [(s, a + off, b + off) for s, a, b in utt["phones"]]
    up, down = warp
    if up != down:
        from scipy.signal import resample_poly

        audio = resample_poly(audio, up, down).astype(np.float32)
        r = up / down
        phones = [(s, a * r, b * r) for s, a, b in phones]
    k = n_video_frames(audio.size)
    return audio, frame_targets(merge_segments(phones), k)


def noise(n, rng):
    """Unit-RMS white, pink-ish or brown-ish noise (synthesisers and rooms are not white)."""
    x = rng.standard_normal(n)
    pole = rng.choice([0.0, 0.9, 0.99])
    if pole:
        from scipy.signal import lfilter

        x = lfilter([1.0], [1.0, -pole], x)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def augment(audio, rng, span=None):
    """Level, channel and noise robustness: -24..+6 dB gain, half the time a first-order tilt (pre-/de-emphasis),
    sometimes a noise floor (-90..-50 dBFS) over the whole clip or only over `span` (the synthesised part, as when
    a TTS chunk with its own floor follows digital silence), or a mains hum."""
    g = 10 ** (rng.uniform(-24, 6) / 20)
    x = audio * g
    if rng.random() < 0.5:
        a = rng.uniform(-0.6, 0.8)
        x = np.concatenate([x[:1], x[1:] - a * x[:-1]]) / (1 + abs(a))
    r = rng.random()
    if r < 0.6:
        level = 10 ** (rng.uniform(-90, -50) / 20)
        a, b = (0, x.size) if span is None or rng.random() < 0.5 else span
        x = x.copy()
        x[a:b] += (noise(b - a, rng) * level).astype(np.float32)
    elif r < 0.7:
        t = np.arange(x.size) / SR
        x = x + (10 ** (rng.uniform(-70, -50) / 20)) * np.sin(2 * np.pi * rng.choice([50, 60]) * t)
    return np.clip(x, -1, 1).astype(np.float32)


def build(utts, rng, aug=True):
    xs, ys = [], []
    for u in utts:
        warp = WARPS[int(rng.integers(len(WARPS)))] if aug else (1, 1)
        lead, tail = int(rng.integers(0, 8000)), int(rng.integers(0, 8000))
        audio, y = labelled(u, lead, tail, warp)
        if aug:
            r = warp[0] / warp[1]
            audio = augment(audio, rng, (int(lead * r), audio.size - int(tail * r)))
        f = logmel(audio)
        if aug and rng.random() < 0.7:
            # A smooth random spectral envelope (+-4 dB), constant over the clip: microphones, rooms and
            # vocoders colour speech differently; the mouth must not depend on one colouring.
            b = np.arange(NMEL) / NMEL
            curve = sum(rng.uniform(-0.35, 0.35) * np.cos(np.pi * k * b + rng.uniform(0, np.pi)) for k in range(1, 4))
            floor = np.log(1e-10) + 1e-3
            f = np.where(f > floor, f + curve.astype(np.float32), f)
        xs.append(windows(f, y.shape[0]))
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def silence_utts(n, rng):
    """Silence clips: digital silence, with a noise floor (-90..-45 dBFS) starting somewhere inside: the mouth
    must rest, also when a noise floor switches on."""
    out = []
    for _ in range(n):
        a = np.zeros(int(rng.integers(8000, 40000)), np.float32)
        if rng.random() < 0.7:
            start = int(rng.integers(0, a.size // 2))
            a[start:] = noise(a.size - start, rng) * 10 ** (rng.uniform(-90, -45) / 20)
        out.append(dict(audio=a, phones=[]))
    return out


# ----------------------------------------------------------------------------------------------------- export
def export_onnx(p, mu, sd, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    P = {k: np.asarray(v, np.float32) for k, v in p.items()}
    inits = [
        numpy_helper.from_array(np.asarray(mu, np.float32).reshape(1, 1, NMEL), "mu"),
        numpy_helper.from_array((1.0 / np.asarray(sd, np.float32)).reshape(1, 1, NMEL), "inv_sd"),
        numpy_helper.from_array(P["c1"], "c1"), numpy_helper.from_array(P["b1"], "b1"),
        numpy_helper.from_array(P["c2"], "c2"), numpy_helper.from_array(P["b2"], "b2"),
        numpy_helper.from_array(P["c3"], "c3"), numpy_helper.from_array(P["b3"], "b3"),
        numpy_helper.from_array(P["d1"], "d1"), numpy_helper.from_array(P["e1"], "e1"),
        numpy_helper.from_array(P["d2"], "d2"), numpy_helper.from_array(P["e2"], "e2"),
        numpy_helper.from_array(OUT_SCALE.reshape(1, 4), "out_scale"),
        numpy_helper.from_array(OUT_MUL.reshape(1, 4), "out_mul"),
        numpy_helper.from_array(OUT_ADD.reshape(1, 4), "out_add"),
    ]
    n = helper.make_node
    nodes = [
        n("Sub", ["mel", "mu"], ["x0"]),
        n("Mul", ["x0", "inv_sd"], ["x1"]),
        n("Transpose", ["x1"], ["x2"], perm=[0, 2, 1]),
        n("Conv", ["x2", "c1", "b1"], ["h1"], kernel_shape=[3], strides=[1]),
        n("Relu", ["h1"], ["r1"]),
        n("Conv", ["r1", "c2", "b2"], ["h2"], kernel_shape=[3], strides=[2]),
        n("Relu", ["h2"], ["r2"]),
        n("Conv", ["r2", "c3", "b3"], ["h3"], kernel_shape=[3], strides=[2]),
        n("Relu", ["h3"], ["r3"]),
        n("Flatten", ["r3"], ["f"], axis=1),
        n("Gemm", ["f", "d1", "e1"], ["g1"]),
        n("Relu", ["g1"], ["q1"]),
        n("Gemm", ["q1", "d2", "e2"], ["z"]),
        n("Mul", ["z", "out_scale"], ["z1"]),
        n("Sigmoid", ["z1"], ["s"]),
        n("Mul", ["s", "out_mul"], ["s1"]),
        n("Add", ["s1", "out_add"], ["mouth"]),
    ]
    graph = helper.make_graph(
        nodes, "lipcast_mouth_net",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["N", WINDOW, NMEL])],
        [helper.make_tensor_value_info("mouth", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="lipcast")
    model.ir_version = 8
    model.doc_string = (
        "lipcast mouth network: log-mel windows (20 frames x 40 bands, 16 kHz, 25 ms/10 ms) -> "
        "jaw_open, width, round, closure for one 40 ms video frame; look-ahead %d samples" % LOOKAHEAD_SAMPLES
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_wav(path, audio_i16):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(audio_i16.astype("<i2").tobytes())


def write_heldout(held, out_dir, fixtures, p, mu_j, sd_j):
    """Held-out clips quantised to 16 bits as committed, with phones and targets; for the first clip also the
    parity fixture (its Python features and the JAX outputs)."""
    os.makedirs(out_dir, exist_ok=True)
    clips = []
    for i, u in enumerate(held):
        lead, tail = 4000, 4800  # 250 ms before, 300 ms after: silent frames to check
        audio, y = labelled(u, lead, tail)
        peak = np.abs(audio).max()
        i16 = np.round(np.clip(audio / max(peak, 1e-9) * 0.7, -1, 1) * 32767).astype(np.int16)
        name = f"{i:02d}_" + "_".join(u["text"].lower().replace(",", "").strip(".?!").split()[:4]) + ".wav"
        name = name.replace("'", "")
        write_wav(os.path.join(out_dir, name), i16)
        off = lead / SR
        phones = [(s, round(a + off, 4), round(b + off, 4)) for s, a, b in merge_segments(u["phones"])]
        clips.append(dict(wav=name, text=u["text"], voice=u["voice"], phones=phones,
                          targets=[[round(float(v), 4) for v in row] for row in y]))
        if i == 0 and fixtures:
            os.makedirs(fixtures, exist_ok=True)
            a = i16.astype(np.float32) / 32768.0
            f = logmel(a)
            f.astype("<f4").tofile(os.path.join(fixtures, "clip00_logmel.f32"))
            k = n_video_frames(a.size)
            out = np.asarray(forward(p, jnp.asarray(windows(f, k)), mu_j, sd_j))
            json.dump(dict(wav=f"models/eval/mouth-heldout/{name}", n_mel_frames=int(f.shape[0]), n_mel=NMEL,
                           window=WINDOW, ctx_past=CTX_PAST, frames=int(k),
                           jax_outputs=[[float(v) for v in row] for row in out]),
                      open(os.path.join(fixtures, "clip00_jax.json"), "w"))
    voices = sorted({c["voice"] for c in clips})
    json.dump(dict(
        about="Held-out voice(s) for the lip-sync report: " + ", ".join(voices) + " (Festival 2.5, Debian "
              "packages festvox-us-slt-hts / festvox-kallpc16k), used in no training. phones: [IPA symbol, start s, "
              "end s] from Festival's segment times; targets: per 40 ms frame [jaw_open, width, round, closure] "
              "from scripts/mouth/common.py. Made by scripts/mouth/train.py.",
        sample_rate=SR, fps=25, clips=clips), open(os.path.join(out_dir, "heldout.json"), "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/mouth")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--sources", default="piper,espeak,festival", help="training sources (data/mouth/<name>.pkl)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--onnx", default="models/builtin/mouth_net.onnx")
    ap.add_argument("--heldout-dir", default="models/eval/mouth-heldout")
    ap.add_argument("--fixtures", default="worker/tests/fixtures/mouth")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t_start = time.time()

    utts = []
    for name in args.sources.split(","):
        utts += pickle.load(open(os.path.join(args.data, f"{name}.pkl"), "rb"))
    order = rng.permutation(len(utts))
    n_val = max(1, len(utts) // 20)
    val = [utts[i] for i in order[:n_val]]
    train = [utts[i] for i in order[n_val:]] + silence_utts(len(utts) // 10, rng)
    print(f"{len(train)} training / {len(val)} validation utterances", flush=True)

    xv, yv = build(val, np.random.default_rng(123), aug=False)
    x0, _ = build(train[:300], rng)
    mu = x0.reshape(-1, NMEL).mean(0)
    sd = x0.reshape(-1, NMEL).std(0) + 1e-3
    del x0
    mu_j, sd_j = jnp.asarray(mu), jnp.asarray(sd)

    p = init(jax.random.PRNGKey(args.seed))
    print(f"parameters: {n_params(p)}", flush=True)
    m = jax.tree_util.tree_map(jnp.zeros_like, p)
    v = jax.tree_util.tree_map(jnp.zeros_like, p)

    @jax.jit
    def step(p, m, v, x, y, t, lr):
        l, g = jax.value_and_grad(loss_fn)(p, x, y, mu_j, sd_j)
        b1, b2 = 0.9, 0.999
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        mh = jax.tree_util.tree_map(lambda a: a / (1 - b1**t), m)
        vh = jax.tree_util.tree_map(lambda a: a / (1 - b2**t), v)
        p = jax.tree_util.tree_map(lambda w, a, b: w - lr * a / (jnp.sqrt(b) + 1e-8), p, mh, vh)
        return p, m, v, l

    eval_loss = jax.jit(lambda p, x, y: loss_fn(p, x, y, mu_j, sd_j))
    t = 0
    history = []
    best = (1e9, p)
    for epoch in range(args.epochs):
        te = time.time()
        x, y = build(train, rng)  # fresh gains, noise and silence padding every epoch
        tb = time.time() - te
        perm = rng.permutation(len(x))
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * epoch / args.epochs))
        losses = []
        for i in range(0, len(x) - args.batch + 1, args.batch):
            idx = perm[i : i + args.batch]
            t += 1
            p, m, v, l = step(p, m, v, jnp.asarray(x[idx]), jnp.asarray(y[idx]), t, lr)
            losses.append(float(l))
        vl = float(np.mean([float(eval_loss(p, jnp.asarray(xv[i : i + 4096]), jnp.asarray(yv[i : i + 4096])))
                            for i in range(0, len(xv), 4096)]))
        history.append(dict(epoch=epoch, train=float(np.mean(losses)), val=vl, frames=len(x)))
        if vl < best[0]:
            best = (vl, p)
        print(f"epoch {epoch:2d}: train {np.mean(losses):.4f} val {vl:.4f} ({len(x)} frames, "
              f"features {tb:.0f}s, total {time.time() - te:.0f}s)", flush=True)
    p = best[1]
    train_s = time.time() - t_start

    # Export and check against JAX.
    os.makedirs(os.path.dirname(args.onnx), exist_ok=True)
    export_onnx(p, mu, sd, args.onnx)
    import onnxruntime as ort

    sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    xs = xv[:2048]
    d = np.abs(sess.run(None, {"mel": xs})[0] - np.asarray(forward(p, jnp.asarray(xs), mu_j, sd_j))).max()
    print(f"ONNX vs JAX on {len(xs)} validation windows: max |diff| {d:.2e}")

    write_heldout(pickle.load(open(os.path.join(args.data, "heldout.pkl"), "rb")), args.heldout_dir,
                  args.fixtures, p, mu_j, sd_j)
    large = os.path.join(args.data, "heldout_large.pkl")
    if os.path.exists(large):
        write_heldout(pickle.load(open(large, "rb")), os.path.join(args.data, "heldout-large"), None, p, mu_j, sd_j)

    report = dict(parameters=n_params(p), epochs=args.epochs, train_seconds=round(train_s), history=history,
                  onnx_max_diff=float(d), train_utterances=len(train), val_utterances=len(val),
                  lookahead_samples=LOOKAHEAD_SAMPLES, jax=jax.__version__)
    json.dump(report, open(os.path.join(args.data, "train_report.json"), "w"), indent=1)
    print(f"done in {train_s:.0f}s; {n_params(p)} parameters")


if __name__ == "__main__":
    main()
