#!/usr/bin/env python3
"""Builds a RANDOM-WEIGHT replica of the Wav2Lip generator (or a MuseTalk-shaped pack) as a lipcast generator pack.

The graph is the exact architecture of Wav2Lip's generator (Prajwal et al. 2020, `models/wav2lip.py`: face
encoder, audio encoder, U-Net decoder with skip connections, sigmoid output), with batch norm folded into the
convolution biases as an export would do, inputs `audio_sequences` [B,1,80,16] (mel80_wav2lip windows) and
`face_sequences` [B,6,96,96] (masked + reference crops, BGR in [0,1]), output `pred` [B,3,96,96].

The weights are random (He-initialised, seeded). Such a pack proves the plug-in contract, the batching and the
speed of this architecture; it renders noise-like faces and says NOTHING about lip-sync quality. It is not a
model and must never be presented as one. To use real Wav2Lip weights you have the rights to, export your own
checkpoint with `export_wav2lip.py` instead.

    python scripts/packs/make_replica.py OUT_DIR [--batch 4] [--seed 0] [--width 1.0] [--arch wav2lip|musetalk]

`--width` scales every channel count (1.0 = the real architecture, 36.3 M parameters); smaller widths make
quick test packs with the same interface. Needs `onnx` and `numpy` (pinned in tests/room/requirements.txt).
Writes OUT_DIR/generate.onnx and OUT_DIR/manifest.toml (with the file's sha256).

`--arch musetalk` builds a MuseTalk-SHAPED pack instead (same interface as MuseTalk 1.5's inference, far fewer
channels so it runs on a CPU; random weights, not a model): `audio.onnx`, a whisper-like encoder with a local
receptive field (16 kHz PCM [1,N] -> [1,N/320,1920]: 50 frames/s, 5 "layers" x 384 as MuseTalk stacks whisper-tiny's
hidden states), `prepare.onnx`, a VAE-encoder-like net run once per portrait (the RGB crop [1,3,256,256] in
[-1,1] -> latents [1,8,32,32]: the lower-half-masked crop's 4 channels, then the reference's), and
`generate.onnx`, a small UNet with one audio cross-attention block plus a decoder (audio [B,10,1920] reshaped
to MuseTalk's [B,50,384] prompts, latents [1,8,32,32] broadcast over the batch -> [B,3,256,256] in [-1,1]).
"""

import argparse
import hashlib
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Graph:
    """Accumulates ONNX nodes and initialisers of conv blocks (conv + folded BN + optional residual + ReLU)."""

    def __init__(self, rng, width):
        self.rng, self.width = rng, width
        self.nodes, self.inits, self.n, self.params = [], [], 0, 0

    def ch(self, c):
        return c if c in (1, 3, 6) else max(4, int(round(c * self.width)))

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def weight(self, shape, fan_in):
        w = (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        n = self.name("w")
        self.inits.append(numpy_helper.from_array(w, n))
        self.params += w.size
        return n

    def bias(self, c):
        b = (self.rng.standard_normal(c) * 0.01).astype(np.float32)
        n = self.name("b")
        self.inits.append(numpy_helper.from_array(b, n))
        self.params += b.size
        return n

    def conv(self, x, cin, cout, k, s, p, residual=False, act=True, transpose=False, out_pad=0):
        cin, cout = self.ch(cin), self.ch(cout)
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        y = self.name("t")
        if transpose:
            w = self.weight((cin, cout, kh, kw), cin * kh * kw)
            self.nodes.append(helper.make_node(
                "ConvTranspose", [x, w, self.bias(cout)], [y], kernel_shape=[kh, kw], strides=[sh, sw],
                pads=[p, p, p, p], output_padding=[out_pad, out_pad]))
        else:
            w = self.weight((cout, cin, kh, kw), cin * kh * kw)
            self.nodes.append(helper.make_node(
                "Conv", [x, w, self.bias(cout)], [y], kernel_shape=[kh, kw], strides=[sh, sw], pads=[p, p, p, p]))
        if residual:
            z = self.name("t")
            self.nodes.append(helper.make_node("Add", [y, x], [z]))
            y = z
        if act:
            z = self.name("t")
            self.nodes.append(helper.make_node("Relu", [y], [z]))
            y = z
        return y

    def concat(self, a, b):
        y = self.name("t")
        self.nodes.append(helper.make_node("Concat", [a, b], [y], axis=1))
        return y


# (cin, cout, kernel, stride, padding, residual) per conv, grouped in the blocks whose outputs feed the decoder.
FACE_ENCODER = [
    [(6, 16, 7, 1, 3, False)],
    [(16, 32, 3, 2, 1, False), (32, 32, 3, 1, 1, True), (32, 32, 3, 1, 1, True)],
    [(32, 64, 3, 2, 1, False), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True)],
    [(64, 128, 3, 2, 1, False), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True)],
    [(128, 256, 3, 2, 1, False), (256, 256, 3, 1, 1, True), (256, 256, 3, 1, 1, True)],
    [(256, 512, 3, 2, 1, False), (512, 512, 3, 1, 1, True)],
    [(512, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False)],
]
AUDIO_ENCODER = [
    (1, 32, 3, 1, 1, False), (32, 32, 3, 1, 1, True), (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False), (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False),
]
# Decoder after the first 1x1 block: (cin, cout, kernel, stride, padding, output_padding, residual convs).
DECODER = [
    (1024, 512, 3, 1, 0, 0, 1),
    (1024, 512, 3, 2, 1, 1, 2),
    (768, 384, 3, 2, 1, 1, 2),
    (512, 256, 3, 2, 1, 1, 2),
    (320, 128, 3, 2, 1, 1, 2),
    (160, 64, 3, 2, 1, 1, 2),
]


def build(seed, width):
    g = Graph(np.random.default_rng(seed), width)
    x, feats = "face_sequences", []
    for block in FACE_ENCODER:
        for (ci, co, k, s, p, r) in block:
            x = g.conv(x, ci, co, k, s, p, residual=r)
        feats.append(x)
    a = "audio_sequences"
    for (ci, co, k, s, p, r) in AUDIO_ENCODER:
        a = g.conv(a, ci, co, k, s, p, residual=r)
    x = g.conv(a, 512, 512, 1, 1, 0)
    x = g.concat(x, feats.pop())
    for (ci, co, k, s, p, op, nres) in DECODER:
        x = g.conv(x, ci, co, k, s, p, transpose=True, out_pad=op)
        for _ in range(nres):
            x = g.conv(x, co, co, 3, 1, 1, residual=True)
        x = g.concat(x, feats.pop())
    x = g.conv(x, 80, 32, 3, 1, 1)
    x = g.conv(x, 32, 3, 1, 1, 0, act=False)
    g.nodes.append(helper.make_node("Sigmoid", [x], ["pred"]))
    graph = helper.make_graph(
        g.nodes, "wav2lip_random_replica",
        [helper.make_tensor_value_info("audio_sequences", TensorProto.FLOAT, ["B", 1, 80, 16]),
         helper.make_tensor_value_info("face_sequences", TensorProto.FLOAT, ["B", 6, 96, 96])],
        [helper.make_tensor_value_info("pred", TensorProto.FLOAT, ["B", 3, 96, 96])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="lipcast make_replica.py (random weights, not a model)")
    onnx.checker.check_model(model)
    return model, g.params


MANIFEST = """# RANDOM-WEIGHT REPLICA of the Wav2Lip generator architecture, made by scripts/packs/make_replica.py
# (seed {seed}, width {width}). It tests the generator plug-in contract, batching and speed; it is NOT a model
# and renders no meaningful lip sync. Format: docs/models.md ("Generator packs").
name = "wav2lip-random-replica"
version = "0.0.0"
description = "Wav2Lip generator architecture with random weights ({params:.1f} M parameters): plumbing and speed only, not a model"
fps = 25
renderer = "generator"

[output]
max_long_side = 512

[generator]
face_size = 96
channel_order = "bgr"
value_range = [0.0, 1.0]
face_input = "masked_and_reference"
audio_feature = "mel80_wav2lip"
audio_window = 16
audio_offset = 0
batch_size = {batch}

[generator.crop]
scale = 1.0
shift_down = 0.03

[generator.paste]
feather = 0.12
region = "full"

[[files]]
role = "generate"
path = "generate.onnx"
sha256 = "{sha}"
inputs = [{{ name = "audio_sequences", shape = [-1, 1, 80, 16] }}, {{ name = "face_sequences", shape = [-1, 6, 96, 96] }}]
outputs = [{{ name = "pred", shape = [-1, 3, 96, 96] }}]
"""


class Net(Graph):
    """Graph helpers for the MuseTalk-shaped replica (channel counts given exactly)."""

    def __init__(self, rng):
        super().__init__(rng, 1.0)

    def ch(self, c):
        return c

    def const(self, value, dtype=np.float32):
        n = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def op(self, kind, inputs, **attrs):
        y = self.name("t")
        self.nodes.append(helper.make_node(kind, inputs, [y], **attrs))
        return y

    def conv1d(self, x, cin, cout, k, s, p, act=True):
        w = self.weight((cout, cin, k), cin * k)
        y = self.op("Conv", [x, w, self.bias(cout)], kernel_shape=[k], strides=[s], pads=[p, p])
        return self.op("Relu", [y]) if act else y

    def matmul(self, x, din, dout):
        return self.op("MatMul", [x, self.weight((din, dout), din)])


def musetalk_model(g, nodes_in, nodes_out, name):
    graph = helper.make_graph(g.nodes, name, nodes_in, nodes_out, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="lipcast make_replica.py (random weights, not a model)")
    onnx.checker.check_model(model)
    return model


def build_musetalk_audio(rng, width):
    """Whisper-like: framing conv (640 samples every 320 = 50 frames/s) then 4 conv layers; the 5 hidden states
    (384 each) stacked per frame as MuseTalk stacks whisper-tiny's. Receptive field 1440 samples back, 1760
    forward: with >= 1760 samples of context, chunked features equal whole-signal features."""
    g = Net(rng)
    c = 384
    x = g.op("Reshape", ["pcm", g.const([1, 1, -1], np.int64)])
    h = g.conv1d(x, 1, c, 640, 320, 160)
    layers = [h]
    for _ in range(4):
        h = g.conv1d(h, c, c, 3, 1, 1)
        layers.append(h)
    y = g.op("Concat", layers, axis=1)
    g.nodes.append(helper.make_node("Transpose", [y], ["features"], perm=[0, 2, 1]))
    return musetalk_model(
        g, [helper.make_tensor_value_info("pcm", TensorProto.FLOAT, [1, "N"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "T", 5 * c])],
        "musetalk_shaped_audio_random"), g.params


def build_musetalk_prepare(rng, width):
    """VAE-encoder-like: the crop masked (lower half black = -1) and the crop itself through the same 8x
    downsampling encoder to 4 latent channels each, concatenated: [1,8,32,32]."""
    g = Net(rng)
    mask = np.ones((1, 1, 256, 256), np.float32)
    mask[:, :, 128:, :] = 0.0
    masked = g.op("Add", [g.op("Mul", ["face", g.const(mask)]), g.const(mask - 1.0)])
    x = g.op("Concat", [masked, "face"], axis=0)
    c1, c2, c3 = (max(8, int(round(v * width))) for v in (64, 128, 128))
    x = g.conv(x, 3, c1, 3, 2, 1)
    x = g.conv(x, c1, c2, 3, 2, 1)
    x = g.conv(x, c2, c3, 3, 2, 1)
    x = g.conv(x, c3, 4, 1, 1, 0, act=False)
    g.nodes.append(helper.make_node("Reshape", [x, g.const([1, 8, 32, 32], np.int64)], ["latents"]))
    return musetalk_model(
        g, [helper.make_tensor_value_info("face", TensorProto.FLOAT, [1, 3, 256, 256])],
        [helper.make_tensor_value_info("latents", TensorProto.FLOAT, [1, 8, 32, 32])],
        "musetalk_shaped_prepare_random"), g.params


def build_musetalk_generate(rng, width):
    """UNet (32 -> 16 -> 8, audio cross-attention at 8x8, skips back up to 32) predicting 4 latent channels,
    then a decoder up to [B,3,256,256] with tanh (MuseTalk's VAE decoder output range [-1,1])."""
    g = Net(rng)
    ch = lambda v: max(8, int(round(v * width)))  # noqa: E731
    c1, c2, c3, d = ch(64), ch(128), ch(256), 64
    audio = g.op("Reshape", ["audio_prompts", g.const([-1, 50, 384], np.int64)])
    batch = g.op("Slice", [g.op("Shape", ["audio_prompts"]), g.const([0], np.int64), g.const([1], np.int64)])
    lat = g.op("Expand", ["latents", g.op("Concat", [batch, g.const([8, 32, 32], np.int64)], axis=0)])
    s1 = g.conv(lat, 8, c1, 3, 1, 1)
    s2 = g.conv(s1, c1, c2, 3, 2, 1)
    x = g.conv(s2, c2, c3, 3, 2, 1)
    # Cross-attention: 64 spatial queries over the 50 audio tokens.
    tokens = g.op("Transpose", [g.op("Reshape", [x, g.const([0, c3, 64], np.int64)])], perm=[0, 2, 1])
    q = g.matmul(tokens, c3, d)
    k = g.matmul(audio, 384, d)
    v = g.matmul(audio, 384, c3)
    att = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 2, 1])]),
                                        g.const(1.0 / np.sqrt(d))])], axis=-1)
    a = g.op("Transpose", [g.op("MatMul", [att, v])], perm=[0, 2, 1])
    x = g.op("Add", [x, g.op("Reshape", [a, g.const([0, c3, 8, 8], np.int64)])])
    x = g.conv(x, c3, c2, 3, 2, 1, transpose=True, out_pad=1)
    x = g.conv(g.concat(x, s2), 2 * c2, c2, 3, 1, 1)
    x = g.conv(x, c2, c1, 3, 2, 1, transpose=True, out_pad=1)
    x = g.conv(g.concat(x, s1), 2 * c1, c1, 3, 1, 1)
    x = g.conv(x, c1, 4, 1, 1, 0, act=False)
    # Decoder 32 -> 256.
    x = g.conv(x, 4, ch(128), 3, 1, 1)
    x = g.conv(x, ch(128), ch(64), 3, 2, 1, transpose=True, out_pad=1)
    x = g.conv(x, ch(64), ch(32), 3, 2, 1, transpose=True, out_pad=1)
    x = g.conv(x, ch(32), ch(16), 3, 2, 1, transpose=True, out_pad=1)
    x = g.conv(x, ch(16), 3, 3, 1, 1, act=False)
    g.nodes.append(helper.make_node("Tanh", [x], ["image"]))
    return musetalk_model(
        g, [helper.make_tensor_value_info("audio_prompts", TensorProto.FLOAT, ["B", 10, 1920]),
            helper.make_tensor_value_info("latents", TensorProto.FLOAT, [1, 8, 32, 32])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 3, 256, 256])],
        "musetalk_shaped_generate_random"), g.params


MUSETALK_MANIFEST = """# RANDOM-WEIGHT MuseTalk-SHAPED pack, made by scripts/packs/make_replica.py --arch musetalk (seed {seed},
# width {width}): MuseTalk 1.5's interface (whisper-like features, VAE-like latents of the masked and reference
# crop, UNet + decoder) with far fewer channels. It tests the audio.onnx / prepare.onnx plumbing and the speed of
# this shape; it is NOT a model and renders no meaningful lip sync. Format: docs/models.md ("Generator packs").
name = "musetalk-shaped-random-replica"
version = "0.0.0"
description = "MuseTalk-shaped random weights ({params:.1f} M parameters): plumbing and speed only, not a model"
fps = 25
renderer = "generator"

[output]
max_long_side = 512

[generator]
face_size = 256
channel_order = "rgb"
value_range = [-1.0, 1.0]
face_input = "masked_and_reference"
audio_feature = "audio_onnx"
audio_window = 10
audio_offset = -4
batch_size = {batch}

[generator.audio_onnx]
rate = 50
chunk_ms = 100
context_ms = 120

[generator.crop]
scale = 1.1
shift_down = 0.02

[generator.paste]
feather = 0.1
region = "full"

[[files]]
role = "audio"
path = "audio.onnx"
sha256 = "{sha_audio}"
inputs = [{{ name = "pcm", shape = [1, -1] }}]
outputs = [{{ name = "features", shape = [1, -1, 1920] }}]

[[files]]
role = "prepare"
path = "prepare.onnx"
sha256 = "{sha_prepare}"
inputs = [{{ name = "face", shape = [1, 3, 256, 256] }}]
outputs = [{{ name = "latents", shape = [1, 8, 32, 32] }}]

[[files]]
role = "generate"
path = "generate.onnx"
sha256 = "{sha_generate}"
inputs = [{{ name = "audio_prompts", shape = [-1, 10, 1920] }}, {{ name = "latents", shape = [1, 8, 32, 32] }}]
outputs = [{{ name = "image", shape = [-1, 3, 256, 256] }}]
"""


def main_musetalk(args):
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    shas, total = {}, 0
    for role, build_fn in (("audio", build_musetalk_audio), ("prepare", build_musetalk_prepare),
                           ("generate", build_musetalk_generate)):
        model, params = build_fn(rng, args.width)
        total += params
        path = args.out / f"{role}.onnx"
        onnx.save(model, str(path))
        shas[f"sha_{role}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (args.out / "manifest.toml").write_text(MUSETALK_MANIFEST.format(
        seed=args.seed, width=args.width, params=total / 1e6, batch=args.batch, **shas))
    print(f"{args.out}: musetalk-shaped random replica, {total / 1e6:.1f} M parameters, batch {args.batch}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--arch", choices=["wav2lip", "musetalk"], default="wav2lip")
    args = ap.parse_args()
    if args.arch == "musetalk":
        main_musetalk(args)
        return
    model, params = build(args.seed, args.width)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "generate.onnx"
    onnx.save(model, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    (args.out / "manifest.toml").write_text(MANIFEST.format(
        seed=args.seed, width=args.width, params=params / 1e6, batch=args.batch, sha=sha))
    print(f"{args.out}: wav2lip random replica, {params / 1e6:.1f} M parameters, batch {args.batch}, sha256 {sha}")


if __name__ == "__main__":
    main()
