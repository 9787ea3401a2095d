#!/usr/bin/env python3
"""Build the face models and the default portrait of lipcast's built-in pack (models/builtin/, models/portraits/).

Run once, by a developer; the outputs are committed, so neither users nor CI need this script.

Sources (both from PyPI, checked by sha256 below):
  * mediapipe==0.10.21 (Apache-2.0), the last wheel that bundles its .tflite models:
      mediapipe/modules/face_detection/face_detection_short_range.tflite  (BlazeFace, 128x128)
      mediapipe/modules/face_landmark/face_landmark.tflite                (468-point face mesh, 192x192)
  * scikit-image==0.26.0, data/astronaut.png (NASA photograph of Eileen Collins, public domain).

Exact commands used (Python 3.11, x86_64 Linux):

    python3 -m venv /tmp/conv-venv
    /tmp/conv-venv/bin/pip install mediapipe==0.10.21 tf2onnx==1.17.0 tensorflow-cpu==2.19.1 onnxruntime==1.31.1
    /tmp/conv-venv/bin/pip download --no-deps mediapipe==0.10.21 scikit-image==0.26.0 -d /tmp/wheels
    /tmp/conv-venv/bin/python scripts/convert_face_models.py --wheels /tmp/wheels

which, per model, runs

    python -m tf2onnx.convert --tflite <model>.tflite --output <model>.onnx --opset 17

then checks the ONNX outputs against the TFLite interpreter on the astronaut portrait (max abs difference printed;
it must be below 1e-3), writes models/portraits/default.jpg and prints the sha256 lines for models/builtin/manifest.toml.
"""

import argparse
import hashlib
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

MEDIAPIPE_WHEEL = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
MEDIAPIPE_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
SKIMAGE_WHEEL = "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
SKIMAGE_SHA256 = "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"

MODELS = {
    # output file name -> member inside the mediapipe wheel
    "face_detection_short_range.onnx": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_landmark.onnx": "mediapipe/modules/face_landmark/face_landmark.tflite",
}

REPO = pathlib.Path(__file__).resolve().parent.parent


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checked_wheel(wheels: pathlib.Path, name: str, want: str) -> pathlib.Path:
    path = wheels / name
    got = sha256(path)
    if got != want:
        sys.exit(f"{path}: sha256 {got}, expected {want}")
    return path


def convert(wheel: pathlib.Path, out_dir: pathlib.Path, work: pathlib.Path) -> dict:
    tflites = {}
    with zipfile.ZipFile(wheel) as z:
        for onnx_name, member in MODELS.items():
            tfl = work / pathlib.Path(member).name
            tfl.write_bytes(z.read(member))
            tflites[onnx_name] = tfl
            out = out_dir / onnx_name
            subprocess.run(
                [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tfl), "--output", str(out), "--opset", "17"],
                check=True,
            )
    return tflites


def validate(tflites: dict, out_dir: pathlib.Path, portrait) -> None:
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    for onnx_name, tfl in tflites.items():
        interp = tf.lite.Interpreter(model_path=str(tfl))
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        _, h, w, _ = inp["shape"]
        img = np.asarray(portrait.resize((int(w), int(h))), np.float32)
        x = (img / 127.5 - 1.0) if h == 128 else (img / 255.0)
        x = x[None].astype(np.float32)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        ref = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
        sess = ort.InferenceSession(str(out_dir / onnx_name), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
        print(onnx_name, "inputs", [(i.name, i.shape) for i in sess.get_inputs()])
        print(onnx_name, "outputs", [(o.name, o.shape) for o in sess.get_outputs()])
        for name, r in ref.items():
            g = got.get(name)
            if g is None:
                sys.exit(f"{onnx_name}: output {name} missing in ONNX ({list(got)})")
            diff = float(np.abs(g.reshape(r.shape) - r).max())
            print(f"  {name}: max |onnx - tflite| = {diff:.2e}")
            if diff > 1e-3:
                sys.exit(f"{onnx_name}: output {name} differs from TFLite by {diff}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=pathlib.Path, required=True, help="folder with the two downloaded wheels")
    args = ap.parse_args()

    from PIL import Image

    mp_wheel = checked_wheel(args.wheels, MEDIAPIPE_WHEEL, MEDIAPIPE_SHA256)
    sk_wheel = checked_wheel(args.wheels, SKIMAGE_WHEEL, SKIMAGE_SHA256)
    out_dir = REPO / "models" / "builtin"
    out_dir.mkdir(parents=True, exist_ok=True)

    with zipfile.ZipFile(sk_wheel) as z:
        astronaut = Image.open(io.BytesIO(z.read("skimage/data/astronaut.png"))).convert("RGB")
    portraits = REPO / "models" / "portraits"
    portraits.mkdir(parents=True, exist_ok=True)
    # 512x512 already: keep the size, store as a high-quality JPEG.
    astronaut.save(portraits / "default.jpg", quality=92)

    with tempfile.TemporaryDirectory() as tmp:
        tflites = convert(mp_wheel, out_dir, pathlib.Path(tmp))
        # The face fills a small part of the astronaut picture; validation only compares numbers, so any input works.
        validate(tflites, out_dir, astronaut)

    for onnx_name in MODELS:
        print(f'{onnx_name} sha256 = "{sha256(out_dir / onnx_name)}"')
    print(f'portraits/default.jpg sha256 = "{sha256(portraits / "default.jpg")}"')


if __name__ == "__main__":
    main()
