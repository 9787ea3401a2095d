#!/usr/bin/env python3
"""An independent reference of the worker's generator preprocessing and blending, for checking it
(worker/tests/model_musetalk.rs, worker/tests/model_wav2lip.rs).

Written in numpy (float64) from the rules in docs/models.md ("Generator packs": `[generator.crop]`,
`face_input = "masked_and_reference"`, `[generator.paste]`), not from the worker's Rust code:

- crop box: side = round(scale * max(width, height)) of the mesh points' extent (at least 8), centre = the
  extent's centre moved down by shift_down * side, corner = round(centre - side / 2); rounding half away from 0;
- face tensor [6, S, S]: the box resampled to S x S bilinearly with pixel centres aligned (sample point
  x0 + (x + 0.5) * side / S - 0.5, coordinates outside the image clamped to its edge), 0..255 mapped linearly to
  value_range, in the pack's channel order; channels 0-2 with rows S/2.. set to a black pixel's value (MuseTalk's
  and Wav2Lip's lower-half mask), channels 3-5 the reference (the same still crop);
- blend: the generated [3, S, S] crop resampled bilinearly to the box (clamped at its edges), mapped back to
  0..255 (clamped), and mixed into the frame with a weight that is 1 inside the box and falls linearly to 0 over
  feather * side at every edge (distance measured from the pixel's centre); region "lower_half" also ramps from
  0 at the box's middle line to 1 a feather below it; the result rounded half away from 0.

    python scripts/packs/musetalk_pack/reference.py --manifest PACK/manifest.toml --image working.png \\
        --points mesh.f32 --generated crop.f32 --out DIR

Inputs: the working image the worker prepared (PNG, RGB), its mesh points (little-endian float32 x, y, z per
point, working-image pixels), a generated crop ([3, S, S] float32 in the pack's value range and channel order).
Writes DIR/box.json ({"x0", "y0", "side"}), DIR/face.f32 (the [6, S, S] tensor; channels 3-5 are what a 3-channel
prepare.onnx gets) and DIR/blended.rgb (the image with the crop pasted, raw RGB bytes). Needs numpy and pillow
only (both in .venv-musetalk).
"""

import argparse
import json
import pathlib
import tomllib

import numpy as np
from PIL import Image


def round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def crop_box(points, scale, shift_down):
    xy = np.asarray(points, np.float64)[:, :2]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    side = max(float(round_half_away(max(x1 - x0, y1 - y0) * scale)), 8.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + shift_down * side
    return int(round_half_away(cx - side / 2)), int(round_half_away(cy - side / 2)), int(side)


def bilinear(img, sx, sy):
    """img [H, W, C] float64 sampled at the grid sx (columns) x sy (rows), edges clamped: [len(sy), len(sx), C]."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = (sx - x0)[None, :, None], (sy - y0)[:, None, None]
    xa, xb = np.clip(x0, 0, w - 1).astype(int), np.clip(x0 + 1, 0, w - 1).astype(int)
    ya, yb = np.clip(y0, 0, h - 1).astype(int), np.clip(y0 + 1, 0, h - 1).astype(int)
    top = img[ya][:, xa] * (1 - fx) + img[ya][:, xb] * fx
    bottom = img[yb][:, xa] * (1 - fx) + img[yb][:, xb] * fx
    return top * (1 - fy) + bottom * fy


def face_tensor(image, box, s, order, lo, hi):
    x0, y0, side = box
    grid = (np.arange(s) + 0.5) * side / s - 0.5
    crop = bilinear(image.astype(np.float64), x0 + grid, y0 + grid)  # [S, S, RGB]
    if order == "bgr":
        crop = crop[:, :, ::-1]
    ref = lo + (hi - lo) * crop.transpose(2, 0, 1) / 255.0
    masked = ref.copy()
    masked[:, s // 2:, :] = lo
    return np.concatenate([masked, ref])


def ramp(d, f):
    return np.ones_like(d) if f <= 0 else np.clip(d / f, 0.0, 1.0)


def paste_weights(side, feather, region):
    f = feather * side
    c = np.arange(side) + 0.5
    edge = ramp(np.minimum(c, side - c), f)
    wy = edge.copy()
    if region == "lower_half":
        wy = np.minimum(wy, (c >= side / 2).astype(np.float64) if f <= 0 else ramp(c - side / 2, f))
    return wy[:, None] * edge[None, :]


def blend(image, generated, box, s, order, lo, hi, feather, region):
    x0, y0, side = box
    grid = np.clip((np.arange(side) + 0.5) * s / side - 0.5, 0, s - 1)
    gen = bilinear(generated.transpose(1, 2, 0).astype(np.float64), grid, grid)  # [side, side, tensor channels]
    if order == "bgr":
        gen = gen[:, :, ::-1]
    gen = np.clip((gen - lo) / (hi - lo) * 255.0, 0.0, 255.0)
    weight = paste_weights(side, feather, region)[:, :, None]
    out = image.astype(np.float64)
    h, w = image.shape[:2]
    ys, xs = slice(max(y0, 0), min(y0 + side, h)), slice(max(x0, 0), min(x0 + side, w))
    by, bx = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
    old = out[ys, xs]
    out[ys, xs] = np.clip(round_half_away(old + (gen[by, bx] - old) * weight[by, bx]), 0, 255)
    return out.astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=pathlib.Path, required=True)
    ap.add_argument("--image", type=pathlib.Path, required=True)
    ap.add_argument("--points", type=pathlib.Path, required=True)
    ap.add_argument("--generated", type=pathlib.Path, required=True)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args()
    g = tomllib.loads(args.manifest.read_text())["generator"]
    s, order = g["face_size"], g["channel_order"]
    lo, hi = g["value_range"]
    image = np.asarray(Image.open(args.image).convert("RGB"))
    points = np.fromfile(args.points, "<f4").reshape(-1, 3)
    generated = np.fromfile(args.generated, "<f4").reshape(3, s, s)
    box = crop_box(points, g["crop"]["scale"], g["crop"].get("shift_down", 0.0))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "box.json").write_text(json.dumps(dict(zip(("x0", "y0", "side"), box))))
    face_tensor(image, box, s, order, lo, hi).astype("<f4").tofile(args.out / "face.f32")
    blended = blend(image, generated, box, s, order, lo, hi, g["paste"]["feather"], g["paste"]["region"])
    (args.out / "blended.rgb").write_bytes(blended.tobytes())
    print(f"reference: box {box} from {len(points)} points, face tensor [6,{s},{s}], blended {image.shape[1]}x"
          f"{image.shape[0]} ({g['paste']['region']}, feather {g['paste']['feather']})")


if __name__ == "__main__":
    main()
