#!/usr/bin/env python3
"""Builds a RANDOM-WEIGHT replica of the Wav2Lip generator as a lipcast generator pack.

The graph is the exact architecture of Wav2Lip's generator (Prajwal et al. 2020, `models/wav2lip.py`: face
encoder, audio encoder, U-Net decoder with skip connections, sigmoid output), with batch norm folded into the
convolution biases as an export would do, inputs `audio_sequences` [B,1,80,16] (mel80_wav2lip windows) and
`face_sequences` [B,6,96,96] (masked + reference crops, BGR in [0,1]), output `pred` [B,3,96,96].

The weights are random (He-initialised, seeded). Such a pack proves the plug-in contract, the batching and the
speed of this architecture; it renders noise-like faces and says NOTHING about lip-sync quality. It is not a
model and must never be presented as one. To use real Wav2Lip weights you have the rights to, export your own
checkpoint with `export_wav2lip.py` instead.

    python scripts/packs/make_replica.py OUT_DIR [--batch 4] [--seed 0] [--width 1.0]

`--width` scales every channel count (1.0 = the real architecture, 36.3 M parameters); smaller widths make
quick test packs with the same interface. Needs `onnx` and `numpy` (pinned in tests/room/requirements.txt).
Writes OUT_DIR/generate.onnx and OUT_DIR/manifest.toml (with the file's sha256).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=float, default=1.0)
    args = ap.parse_args()
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
