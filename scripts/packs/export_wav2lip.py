#!/usr/bin/env python3
"""Exports YOUR OWN Wav2Lip generator checkpoint to a lipcast generator pack (generate.onnx + manifest.toml).

You supply the weights and the right to use them; nothing is downloaded. The model class comes from your own
checkout of the Wav2Lip code (`models/wav2lip.py`, class `Wav2Lip`), which this script imports from
`--wav2lip-repo`. Wav2Lip's code and published weights carry their own (non-commercial) licence; so does the
pack made from them.

It runs in the MuseTalk exporter's pinned environment (torch 2.15.0, onnx, onnxruntime; the same helpers):

    python3 -m venv .venv-musetalk
    .venv-musetalk/bin/pip install --no-deps --require-hashes -r scripts/packs/requirements-musetalk.txt
    .venv-musetalk/bin/python scripts/packs/export_wav2lip.py --wav2lip-repo ~/src/Wav2Lip \\
        --checkpoint ~/weights/my_wav2lip.pth --out packs/my-wav2lip [--batch 4] [--name my-wav2lip]
    MODEL_PACK=packs/my-wav2lip scripts/run.sh

What it does:
1. loads the checkpoint on the CPU with `torch.load(weights_only=True)` (a checkpoint cannot run code; the
   published pre-1.6 format and the optimizer state saved beside the weights load too), takes `state_dict` (or
   the whole file if it is one), strips a `module.` prefix left by DataParallel, and loads it into `Wav2Lip()`
   strictly (a missing or extra tensor is an error naming them);
2. exports `model.eval()` with the TorchScript exporter (batch norms folded), inputs `audio_sequences`
   [B,1,80,16] and `face_sequences` [B,6,96,96], output `pred` [B,3,96,96], B dynamic, opset 17, the weights
   inside `generate.onnx` (the file the manifest lists and the worker checks);
3. checks the ONNX file under ONNX Runtime against PyTorch on worker-like inputs at the pack's batch and at
   batch 1 (max abs difference printed; the export fails above 1e-3);
4. writes manifest.toml with the file's sha256 and the Wav2Lip contract (docs/models.md, "Generator packs"):
   BGR faces in [0, 1], lower half masked + reference, mel80_wav2lip windows of 16 frames, crop and paste rules.

Tested by worker/tests/model_wav2lip.rs on a stand-in checkout (worker/tests/fixtures/wav2lip: lipcast's own
code of the published architecture, the published checkpoints' tensor names) with random weights saved as the
published checkpoints are (436 MB, pre-1.6 format, `module.` prefixes, optimizer state): the export takes ~10 s
on a 2-vCPU machine (5 s of it the ONNX export) and ONNX Runtime is within ~2e-5 of PyTorch; the worker loads
and renders the pack. Real Wav2Lip weights were not available to test with.
"""

import argparse
import json
import pathlib
import sys
import time

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


THRESHOLD = 1e-3  # largest |ONNX Runtime - PyTorch| allowed on the sigmoid output in [0, 1]


def check_inputs(batch, gen):
    """What the worker feeds: mel windows in Wav2Lip's normalised [-4, 4], faces in [0, 1] whose first three
    channels have their lower half black."""
    import torch

    mel = torch.rand(batch, 1, 80, 16, generator=gen) * 8 - 4
    face = torch.rand(batch, 6, 96, 96, generator=gen)
    face[:, :3, 48:] = 0
    return mel, face


def load_class(repo):
    """`models.Wav2Lip` from the user's checkout (and from nowhere else: an already imported `models` is dropped)."""
    repo = repo.resolve()
    if not (repo / "models" / "wav2lip.py").is_file():
        sys.exit(f"--wav2lip-repo {repo}: no models/wav2lip.py there (give the folder of your Wav2Lip checkout)")
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[name]
    sys.path.insert(0, str(repo))
    try:
        from models import Wav2Lip  # the user's own checkout
    except ImportError as e:
        sys.exit(f"importing models.Wav2Lip from {repo}: {e}")
    return Wav2Lip


def load_state(path):
    """The generator's tensors from a checkpoint: its `state_dict` (Wav2Lip's training script saves it beside the
    optimizer's state) or the whole file if it is one, without DataParallel's `module.` prefix."""
    import torch

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)  # a checkpoint cannot run code
    except Exception as e:  # noqa: BLE001 - any refusal is reported with the file's name
        sys.exit(f"loading {path} (weights only): {e}")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        sys.exit(f"{path}: neither a state dict nor a dict with one under 'state_dict'")
    return {k.removeprefix("module."): v for k, v in state.items()}


def main():
    ap = argparse.ArgumentParser(description="Export your own Wav2Lip checkpoint to a lipcast generator pack")
    ap.add_argument("--wav2lip-repo", type=pathlib.Path, required=True,
                    help="your checkout of the Wav2Lip code (provides models.Wav2Lip)")
    ap.add_argument("--checkpoint", type=pathlib.Path, required=True, help="your .pth checkpoint")
    ap.add_argument("--out", type=pathlib.Path, required=True, help="pack folder to write")
    ap.add_argument("--name", default="wav2lip-user")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--batch", type=int, default=4, help="frames per generate call (the worker's batch, 1..32)")
    ap.add_argument("--crop-scale", type=float, default=1.0)
    ap.add_argument("--shift-down", type=float, default=0.03)
    ap.add_argument("--feather", type=float, default=0.12)
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    ap.add_argument("--report", type=pathlib.Path, help="also write the figures to this JSON file")
    args = ap.parse_args()
    if not 1 <= args.batch <= 32:
        ap.error("--batch must be 1..32 (the pack contract's batch_size)")

    import numpy as np
    import torch

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from musetalk_pack import onnx_tools  # the same export and check helpers as the MuseTalk exporter

    torch.set_num_threads(args.threads)
    started = time.time()
    wav2lip = load_class(args.wav2lip_repo)
    state = load_state(args.checkpoint)
    model = wav2lip()
    try:
        model.load_state_dict(state, strict=True)  # a missing or extra tensor is an error
    except RuntimeError as e:
        sys.exit(f"{args.checkpoint} does not fit models.Wav2Lip of {args.wav2lip_repo}: {e}")
    model.eval()
    params = sum(p.numel() for p in model.parameters())

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "generate.onnx"
    gen = torch.Generator().manual_seed(0)
    example = check_inputs(args.batch, gen)
    # TorchScript exporter, opset 17, weights inside the one file the manifest lists (torch's default dynamo
    # exporter writes them to an unlisted generate.onnx.data and converts from opset 18).
    files, export_s = onnx_tools.export(
        model, example, onnx_path, ["audio_sequences", "face_sequences"], ["pred"],
        {"audio_sequences": {0: "B"}, "face_sequences": {0: "B"}, "pred": {0: "B"}})
    if files != [onnx_path]:
        sys.exit(f"export wrote {[str(f) for f in files]}, expected only {onnx_path}")

    # The batch the worker uses and a single frame (the batch dimension is dynamic), on fresh inputs.
    sess = onnx_tools.session(onnx_path, args.threads)
    diffs = {}
    for b in sorted({args.batch, 1}):
        mel, face = check_inputs(b, gen)
        with torch.no_grad():
            expected = model(mel, face).numpy()
        got = sess.run(["pred"], {"audio_sequences": mel.numpy(), "face_sequences": face.numpy()})[0]
        diffs[b] = float(np.abs(got.astype(np.float64) - expected).max())
        print(f"ONNX Runtime vs PyTorch: max abs difference {diffs[b]:.2e} (batch {b}; threshold {THRESHOLD:g})")
    if max(diffs.values()) > THRESHOLD:
        sys.exit(f"export check failed: difference {max(diffs.values())} > {THRESHOLD}")

    (args.out / "manifest.toml").write_text(MANIFEST.format(
        checkpoint_name=args.checkpoint.name, checkpoint_sha=onnx_tools.sha256(args.checkpoint), name=args.name,
        version=args.version, batch=args.batch, crop_scale=args.crop_scale, shift_down=args.shift_down,
        feather=args.feather, sha=onnx_tools.sha256(onnx_path)))
    total_s = time.time() - started
    print(f"{params / 1e6:.2f} M parameters; ONNX export {export_s:.1f} s, {total_s:.1f} s in all")
    if args.report:
        args.report.write_text(json.dumps({
            "params": params, "batch": args.batch, "max_diff_vs_torch": {str(b): d for b, d in diffs.items()},
            "threshold": THRESHOLD, "export_s": round(export_s, 1), "total_s": round(total_s, 1)}, indent=1))
    print(f"wrote {args.out}/generate.onnx and manifest.toml; serve it with MODEL_PACK={args.out}")


if __name__ == "__main__":
    main()
