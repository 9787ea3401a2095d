#!/usr/bin/env python3
"""Builds a lipcast generator pack from MuseTalk 1.5: its weights as its authors publish them, or the same upstream
classes with random weights.

    .venv-musetalk/bin/python scripts/packs/musetalk.py OUT [--weights MODELS_DIR] [--size full|small]
        [--batch 4] [--chunk-ms 200] [--context-ms 200] [--threads 1] [--seed 0] [--no-fp16]

Install the pinned environment first (torch, diffusers, transformers, onnx, onnxruntime; hash-pinned):

    python3 -m venv .venv-musetalk
    .venv-musetalk/bin/pip install --no-deps --require-hashes -r scripts/packs/requirements-musetalk.txt

`--weights MODELS_DIR` is MuseTalk's `models/` folder as its download script lays it out:
`musetalkV15/musetalk.json` + `musetalkV15/unet.pth` (the UNet), `sd-vae/` (diffusers AutoencoderKL folder,
sd-vae-ft-mse) and `whisper/` (the Hugging Face whisper-tiny folder). Only local files are read; nothing is
downloaded (HF_HUB_OFFLINE is set). Without `--weights` the networks are built from the published configs
(scripts/packs/musetalk_pack/facts.py) with RANDOM weights: `--size full` is MuseTalk 1.5's real architecture,
`--size small` the same classes with few channels (for CI). A random-weight pack renders noise: it proves the
plumbing and measures speed, never lip-sync quality.

Writes two packs, `OUT/fp32/` (CPU) and `OUT/fp16/` (half-precision weights and activations with float32 inputs
and outputs, for CUDA), each with `audio.onnx`, `prepare.onnx`, `generate.onnx` (weights in `*.onnx.data` beside a
file above 1.5 GB) and `manifest.toml` with their sha256s; serve one with `MODEL_PACK=OUT/fp16` (or fp32).
Every fp32 file is run under ONNX Runtime's CPU provider on the inputs PyTorch ran and the largest difference
printed (the export fails above the tolerance); the log-mel front end is checked against transformers'
WhisperFeatureExtractor; the fp16 files are loaded, their shapes checked, and compared with fp32 where the CPU
provider can run them. Parameter counts and FLOPs per stage are counted from the graphs. Figures go to stdout
and `OUT/report.json`.

`musetalk_pack/reference.py` is an independent numpy reference of the worker's crop box, face tensor and
feathered paste for a pack's manifest (docs/models.md, "The crop and the blend, checked against a reference");
the worker's tests compare their output with it.
"""

import argparse
import copy
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch anything at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from musetalk_pack import facts, manifest, nets, onnx_tools  # noqa: E402

# Largest |ONNX Runtime - PyTorch| allowed for the fp32 files, relative to the output's largest magnitude (at
# least 1): float32 re-association over a ~1 G-parameter graph stays well under this.
FP32_TOLERANCE = 1e-3


def test_signal(n, rate=16000, seed=1):
    """A voiced, speech-like test signal: a 140 Hz harmonic source with a syllable envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * (t > 0.05)
    return (0.25 * voice * env + 0.003 * rng.standard_normal(n)).astype(np.float32)[None]


def test_face(size=facts.FACE_SIZE, seed=2):
    """A smooth synthetic RGB crop in [-1, 1] (what the worker feeds prepare.onnx)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.6 - 0.5 * y, 0.2 + 0.3 * x * y, -0.2 + 0.4 * np.sin(6 * x)])
    return np.clip(base + 0.05 * rng.standard_normal(base.shape), -1, 1).astype(np.float32)[None]


def half_copy(networks):
    """The upstream modules in float16 (the fp16 variant); the float32 originals stay untouched."""
    h = copy.copy(networks)
    h.unet, h.vae, h.encoder = (copy.deepcopy(m).half() for m in (networks.unet, networks.vae, networks.encoder))
    return h


class Stage:
    """One ONNX file of a pack: its module, example inputs, names and what the manifest declares."""

    def __init__(self, role, module, args, inputs, outputs, dynamic, declared, per_frame):
        self.role, self.module, self.args = role, module, args
        self.inputs, self.outputs, self.dynamic, self.declared = inputs, outputs, dynamic, declared
        self.per_frame = per_frame  # how many video frames one run covers (for FLOPs per frame)


def stages(networks, dtype, n_samples, batch, chunk_ms, face, pcm, audio_windows, latents):
    c = networks.layers * networks.width
    w, s = facts.FEATURE_WINDOW, facts.FACE_SIZE
    t = n_samples * facts.FEATURE_RATE // 16000
    return [
        Stage("audio", nets.Audio(networks, n_samples, dtype), (torch.from_numpy(pcm),), ["pcm"], ["features"],
              None, {"inputs": [("pcm", [1, n_samples])], "outputs": [("features", [1, t, c])]},
              chunk_ms / 40.0),
        Stage("prepare", nets.Prepare(networks, dtype), (torch.from_numpy(face),), ["face"], ["latents"], None,
              {"inputs": [("face", [1, 3, s, s])], "outputs": [("latents", [1, 8, 32, 32])]}, None),
        Stage("generate", nets.Generate(networks, dtype),
              (torch.from_numpy(audio_windows), torch.from_numpy(latents)), ["audio_prompts", "latents"], ["image"],
              {"audio_prompts": {0: "B"}, "image": {0: "B"}},
              {"inputs": [("audio_prompts", [-1, w, c]), ("latents", [1, 8, 32, 32])],
               "outputs": [("image", [-1, 3, s, s])]}, batch),
    ]


def windows(features, batch):
    """`batch` MuseTalk windows of 10 feature frames from the check's features (frames 2 i - 4 .. 2 i + 5, zeros
    outside), as the worker builds them."""
    t, c = features.shape[1], features.shape[2]
    out = np.zeros((batch, facts.FEATURE_WINDOW, c), np.float32)
    for i in range(batch):
        for k in range(facts.FEATURE_WINDOW):
            j = 2 * i + facts.FEATURE_OFFSET + k
            if 0 <= j < t:
                out[i, k] = features[0, j]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--weights", type=pathlib.Path, help="MuseTalk's models/ folder (else random weights)")
    ap.add_argument("--size", choices=["full", "small"], default="full", help="random weights: which config")
    ap.add_argument("--batch", type=int, default=4, help="frames per generate.onnx call (manifest batch_size)")
    ap.add_argument("--chunk-ms", type=int, default=200, help="audio.onnx chunk (manifest chunk_ms)")
    ap.add_argument("--context-ms", type=int, default=200, help="audio either side of a chunk (context_ms)")
    ap.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads for export and checks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fp16", action="store_true", help="write only the fp32 pack")
    ap.add_argument("--save-layout", type=pathlib.Path,
                    help="random weights: also write them in the authors' layout here (tests --weights)")
    args = ap.parse_args()
    if args.chunk_ms % 20 or args.context_ms % 20:
        ap.error("--chunk-ms and --context-ms must be whole numbers of 20 ms (whisper's 2 x 10 ms hop)")
    torch.set_num_threads(args.threads)
    started = time.time()

    networks = nets.Networks.load(args.weights) if args.weights else nets.Networks.random(args.size, args.seed)
    if args.save_layout:
        if args.weights:
            ap.error("--save-layout writes random weights; it takes no --weights")
        networks.save_layout(args.save_layout)
    params = networks.params()
    print(f"networks: {networks.source}; parameters (PyTorch): "
          + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in params.items()))
    n_samples = (args.chunk_ms + 2 * args.context_ms) * 16
    pcm, face = test_signal(n_samples), test_face()

    report = {"source": networks.source, "params_torch": params, "batch": args.batch, "chunk_ms": args.chunk_ms,
              "context_ms": args.context_ms, "threads": args.threads, "variants": {}}

    # The log-mel front end against the library's own feature extractor on the same samples.
    mel_ref = networks.fe(pcm[0], sampling_rate=16000, return_tensors="np").input_features
    with torch.no_grad():
        mel = nets.LogMel(networks.fe)(torch.from_numpy(pcm)).numpy()
    d, scale = onnx_tools.max_diff(mel, mel_ref)
    print(f"log-mel front end vs WhisperFeatureExtractor: max diff {d:.2e} (max |mel| {scale:.2f})")
    if d > 1e-3:
        raise SystemExit(f"the log-mel front end differs from WhisperFeatureExtractor by {d}")
    report["logmel_vs_feature_extractor"] = d

    # Reference run in PyTorch (float32): the features feed the windows, the latents feed generate.
    with torch.no_grad():
        feats = nets.Audio(networks, n_samples, torch.float32)(torch.from_numpy(pcm)).numpy()
        latents = nets.Prepare(networks, torch.float32)(torch.from_numpy(face)).numpy()
    audio_windows = windows(feats, args.batch)

    fp32_outputs = {}
    variants = [("fp32", torch.float32, networks)]
    if not args.no_fp16:
        variants.append(("fp16", torch.float16, None))
    for name, dtype, nw in variants:
        if nw is None:
            nw = half_copy(networks)
        out_dir = args.out / name
        out_dir.mkdir(parents=True, exist_ok=True)
        files, figures = {}, {}
        for st in stages(nw, dtype, n_samples, args.batch, args.chunk_ms, face, pcm, audio_windows, latents):
            path = out_dir / f"{st.role}.onnx"
            written, secs = onnx_tools.export(st.module, st.args, path, st.inputs, st.outputs, st.dynamic)
            files[st.role] = written
            fig = {"export_s": round(secs, 1), "bytes": sum(p.stat().st_size for p in written),
                   "dtypes": onnx_tools.ort_param_dtypes(path)}
            fixed = {n: [1 if v == -1 else v for v in shp] for n, shp in st.declared["inputs"]}
            p, flops, unknown, parts = onnx_tools.count(path, fixed)
            fig.update(params=p, flops_per_run_b1=flops, uncounted_nodes=unknown, flops_by_module_b1=parts)
            if st.per_frame:
                # generate: counted at B = 1 (one frame); audio: one chunk covers chunk_ms / 40 video frames.
                fig["flops_per_frame"] = flops if st.role == "generate" else flops / st.per_frame
            feeds = {n: a.numpy() for n, a in zip(st.inputs, st.args)}
            if name == "fp32":
                with torch.no_grad():
                    ref = st.module(*st.args).numpy()
                got, run_s = onnx_tools.run(path, feeds, args.threads)
                d, scale = onnx_tools.max_diff(got[0], ref)
                fig.update(max_diff_vs_torch=d, max_abs=scale, ort_run_s=round(run_s, 3))
                fp32_outputs[st.role] = got[0]
                ok = d <= FP32_TOLERANCE * max(1.0, scale)
                print(f"  fp32 {st.role}.onnx: ONNX Runtime vs PyTorch max diff {d:.2e} (max |out| {scale:.3g});"
                      f" {p / 1e6:.2f} M params, {flops / 1e9:.2f} GFLOP per run at B=1, CPU run {run_s:.2f} s")
                if not ok:
                    raise SystemExit(f"{st.role}.onnx differs from PyTorch by {d} (tolerance "
                                     f"{FP32_TOLERANCE * max(1.0, scale):.2e})")
            else:
                fig.update(fp16_check(path, feeds, fp32_outputs[st.role], args.threads, st.role))
            figures[st.role] = fig
        manifest.write(out_dir, files, networks, args, n_samples, name)
        report["variants"][name] = figures
        print(f"{out_dir}: {name} pack written")
    report["total_s"] = round(time.time() - started, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    summary(report)


def fp16_check(path, feeds, fp32_out, threads, role):
    """Loads the fp16 file, checks its declared shapes, and compares it with the fp32 output where ONNX Runtime's
    CPU provider can run it (it has no float16 kernel for some operators: that is reported, not hidden)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    io = {v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)
          for v in list(model.graph.input) + list(model.graph.output)}
    assert all(t == "FLOAT" for t in io.values()), f"{path}: inputs and outputs must stay float32: {io}"
    try:
        got, run_s = onnx_tools.run(path, feeds, threads)
    except Exception as e:  # noqa: BLE001 - the provider's refusal is the figure
        msg = str(e).strip().splitlines()[0][:300]
        print(f"  fp16 {role}.onnx: loads, float32 I/O; ONNX Runtime CPU could not run it here: {msg}")
        return {"ran_on_cpu": False, "cpu_error": msg}
    if got[0].shape != fp32_out.shape:
        raise SystemExit(f"fp16 {role}.onnx output shape {got[0].shape} != fp32 {fp32_out.shape}")
    finite = bool(np.isfinite(got[0]).all())
    d, scale = onnx_tools.max_diff(got[0], fp32_out) if finite else (float("inf"), 0.0)
    print(f"  fp16 {role}.onnx: ran on ONNX Runtime CPU in {run_s:.2f} s; vs fp32 max diff {d:.2e} "
          f"(max |out| {scale:.3g}){'' if finite else ' NON-FINITE OUTPUT'}")
    return {"ran_on_cpu": True, "max_diff_vs_fp32": d, "max_abs": scale, "finite": finite,
            "ort_run_s": round(run_s, 3)}


def summary(report):
    f32 = report["variants"]["fp32"]
    print("summary (fp32 graphs):")
    for role, fig in f32.items():
        per = fig.get("flops_per_frame")
        per_s = f", {per / 1e9:.2f} GFLOP per video frame" if per is not None else " (once per portrait)"
        print(f"  {role}: {fig['params'] / 1e6:.2f} M params, {fig['flops_per_run_b1'] / 1e9:.2f} GFLOP per run"
              f"{per_s}, {fig['bytes'] / 1e6:.1f} MB, max diff vs PyTorch {fig['max_diff_vs_torch']:.2e}")
    print(f"total {report['total_s']} s")


if __name__ == "__main__":
    main()
