"""The pack's manifest.toml (format: docs/models.md, "Generator packs")."""

from . import facts, onnx_tools

HEADER = """# MuseTalk 1.5 as a lipcast generator pack ({variant}), written by scripts/packs/musetalk.py.
# Networks: {source}.{warning}
# Format: docs/models.md ("Generator packs"). MuseTalk is MIT licensed (Copyright (c) 2024 Tencent Music
# Entertainment Group); the weights' own terms are the weights' publishers'.
"""
RANDOM_WARNING = """
# RANDOM WEIGHTS: the architecture and interface of MuseTalk 1.5, NOT a model. It renders noise over the lower face
# and says nothing about lip-sync quality; it proves the plumbing and measures the speed of this architecture."""

BODY = """name = "{name}"
version = "1.5.0"
description = "{description}"
fps = 25
renderer = "generator"

[output]
max_long_side = 512

[generator]
face_size = {face}
channel_order = "rgb"
value_range = [-1.0, 1.0]
face_input = "masked_and_reference"
audio_feature = "audio_onnx"
audio_window = {window}
audio_offset = {offset}
batch_size = {batch}

[generator.audio_onnx]
rate = {rate}
chunk_ms = {chunk_ms}
context_ms = {context_ms}

[generator.crop]
scale = 1.0
shift_down = 0.05

[generator.paste]
feather = 0.08
region = "lower_half"
"""

FILE = """
[[files]]
role = "{role}"
path = "{path}"
sha256 = "{sha}"
{io}"""


def _tensors(specs):
    return "[" + ", ".join(f'{{ name = "{n}", shape = [{", ".join(str(d) for d in s)}] }}' for n, s in specs) + "]"


def write(out_dir, files, networks, args, n_samples, variant):
    """Writes out_dir/manifest.toml for the files of `files` ({role: [onnx, optional external data]})."""
    random = networks.source.startswith("random")
    c = networks.layers * networks.width
    s, w = facts.FACE_SIZE, facts.FEATURE_WINDOW
    io = {
        "audio": ([("pcm", [1, n_samples])], [("features", [1, n_samples * facts.FEATURE_RATE // 16000, c])]),
        "prepare": ([("face", [1, 3, s, s])], [("latents", [1, 8, facts.LATENT_SIZE, facts.LATENT_SIZE])]),
        "generate": ([("audio_prompts", [-1, w, c]), ("latents", [1, 8, facts.LATENT_SIZE, facts.LATENT_SIZE])],
                     [("image", [-1, 3, s, s])]),
    }
    name = "musetalk-1.5" + (f"-random-{args.size}" if random else "") + f"-{variant}"
    what = "random weights, plumbing and speed only, not a model" if random else "MuseTalk 1.5 weights"
    text = HEADER.format(variant=variant, source=networks.source, warning=RANDOM_WARNING if random else "")
    text += BODY.format(name=name, description=f"MuseTalk 1.5 ({variant}; {what})", face=s, window=w,
                        offset=facts.FEATURE_OFFSET, batch=args.batch, rate=facts.FEATURE_RATE,
                        chunk_ms=args.chunk_ms, context_ms=args.context_ms)
    for role in ("audio", "prepare", "generate"):
        main, *data = files[role]
        ins, outs = io[role]
        text += FILE.format(role=role, path=main.name, sha=onnx_tools.sha256(main),
                            io=f"inputs = {_tensors(ins)}\noutputs = {_tensors(outs)}\n")
        for extra in data:
            # The weights of a file above protobuf's 2 GiB: ONNX Runtime reads them from beside the .onnx; listed
            # so that the worker checks their sha256 too (the role is not one it runs).
            text += FILE.format(role="external_data", path=extra.name, sha=onnx_tools.sha256(extra), io="")
    (out_dir / "manifest.toml").write_text(text)
