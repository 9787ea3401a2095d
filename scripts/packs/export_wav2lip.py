#!/usr/bin/env python3
"""Exports YOUR OWN Wav2Lip generator checkpoint to a lipcast generator pack (generate.onnx + manifest.toml).

You supply the weights and the right to use them; nothing is downloaded. The model class comes from your own
checkout of the Wav2Lip code (`models/wav2lip.py`, class `Wav2Lip`), which this script imports from
`--wav2lip-repo`.

    pip install -r scripts/packs/requirements-export.txt
    python scripts/packs/export_wav2lip.py --wav2lip-repo ~/src/Wav2Lip \\
        --checkpoint ~/weights/my_wav2lip.pth --out packs/my-wav2lip [--batch 4] [--name my-wav2lip]
    MODEL_PACK=packs/my-wav2lip cargo run --release --bin lipcast-supervisor

What it does:
1. loads the checkpoint on the CPU with `torch.load(weights_only=True)` (a checkpoint cannot run code), takes
   `state_dict` (or the whole file if it is one), strips a `module.` prefix left by DataParallel, and loads it
   into `Wav2Lip()` strictly (a missing or extra tensor is an error);
2. exports `model.eval()` with inputs `audio_sequences` [B,1,80,16] and `face_sequences` [B,6,96,96], output
   `pred` [B,3,96,96], B dynamic, opset 17;
3. checks the ONNX file under ONNX Runtime against PyTorch on random inputs (max abs difference printed; the
   export fails above 1e-3);
4. writes manifest.toml with the file's sha256 and the Wav2Lip contract (docs/models.md, "Generator packs"):
   BGR faces in [0, 1], lower half masked + reference, mel80_wav2lip windows of 16 frames, crop and paste rules.

Not tested here (no torch on the build machine); the manifest it writes is the one the random-weight replica
(make_replica.py) uses, which the tests load.
"""

import argparse
import hashlib
import pathlib
import sys

MANIFEST = """# Wav2Lip generator exported by scripts/packs/export_wav2lip.py from {checkpoint_name}
# (sha256 {checkpoint_sha}). The weights are the user's; check their licence before serving them.
# Format: docs/models.md ("Generator packs").
name = "{name}"
version = "{version}"
description = "Wav2Lip generator exported from the user's own checkpoint"
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
scale = {crop_scale}
shift_down = {shift_down}

[generator.paste]
feather = {feather}
region = "full"

[[files]]
role = "generate"
path = "generate.onnx"
sha256 = "{sha}"
inputs = [{{ name = "audio_sequences", shape = [-1, 1, 80, 16] }}, {{ name = "face_sequences", shape = [-1, 6, 96, 96] }}]
outputs = [{{ name = "pred", shape = [-1, 3, 96, 96] }}]
"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description="Export your own Wav2Lip checkpoint to a lipcast generator pack")
    ap.add_argument("--wav2lip-repo", type=pathlib.Path, required=True,
                    help="your checkout of the Wav2Lip code (provides models.Wav2Lip)")
    ap.add_argument("--checkpoint", type=pathlib.Path, required=True, help="your .pth checkpoint")
    ap.add_argument("--out", type=pathlib.Path, required=True, help="pack folder to write")
    ap.add_argument("--name", default="wav2lip-user")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--batch", type=int, default=4, help="frames per generate call (the worker's batch)")
    ap.add_argument("--crop-scale", type=float, default=1.0)
    ap.add_argument("--shift-down", type=float, default=0.03)
    ap.add_argument("--feather", type=float, default=0.12)
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    sys.path.insert(0, str(args.wav2lip_repo.resolve()))
    from models import Wav2Lip  # the user's own checkout

    ckpt = torch.load(str(args.checkpoint), map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model = Wav2Lip()
    model.load_state_dict(state, strict=True)
    model.eval()

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "generate.onnx"
    mel = torch.randn(args.batch, 1, 80, 16)
    face = torch.rand(args.batch, 6, 96, 96)
    with torch.no_grad():
        torch.onnx.export(
            model, (mel, face), str(onnx_path),
            input_names=["audio_sequences", "face_sequences"], output_names=["pred"],
            dynamic_axes={"audio_sequences": {0: "B"}, "face_sequences": {0: "B"}, "pred": {0: "B"}},
            opset_version=17,
        )
        expected = model(mel, face).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["pred"], {"audio_sequences": mel.numpy(), "face_sequences": face.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    print(f"ONNX Runtime vs PyTorch: max abs difference {diff:.2e} (batch {args.batch})")
    if diff > 1e-3:
        sys.exit(f"export check failed: difference {diff} > 1e-3")

    (args.out / "manifest.toml").write_text(MANIFEST.format(
        checkpoint_name=args.checkpoint.name, checkpoint_sha=sha256(args.checkpoint), name=args.name,
        version=args.version, batch=args.batch, crop_scale=args.crop_scale, shift_down=args.shift_down,
        feather=args.feather, sha=sha256(onnx_path)))
    print(f"wrote {args.out}/generate.onnx and manifest.toml; serve it with MODEL_PACK={args.out}")


if __name__ == "__main__":
    main()
