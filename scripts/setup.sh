#!/usr/bin/env bash
# Fetch the pinned run-time artifacts into .vendor/ (git-ignored) and check their sha256.
#
#   .vendor/wheels/                      the downloaded wheels (pins in scripts/pins.txt)
#   .vendor/onnxruntime/libonnxruntime.so*
#   .vendor/livekit/liblivekit_ffi.so    LiveKit's engine
#   .vendor/livekit/ffi.fds              its protobuf descriptors (the worker's build script reads them)
#   .vendor/cuda/lib*.so*                GPU flavour only: CUDA 13 runtime, cuBLAS, cuRAND, cuFFT, nvJitLink,
#                                        NVRTC and cuDNN 9 from the pinned nvidia-* wheels (LD_LIBRARY_PATH)
#
# Idempotent: a second run checks the stamp and exits in well under a second.
# LIPCAST_FLAVOR=gpu takes onnxruntime-gpu instead of onnxruntime, plus the CUDA libraries it loads
# (pins named nvidia-*), and extracts those into .vendor/cuda/ (see deploy/README.md, "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENDOR=${LIPCAST_VENDOR_DIR:-$ROOT/.vendor}
FLAVOR=${LIPCAST_FLAVOR:-cpu}
ORT_PKG=onnxruntime
[ "$FLAVOR" = gpu ] && ORT_PKG=onnxruntime-gpu

pin() { awk -v n="$1" '$1==n {print $'"$2"'}' scripts/pins.txt; }
say() { echo "setup: $*" >&2; }

stamp_want="$(sha256sum scripts/pins.txt scripts/vendor_extract.py | sha256sum | cut -c1-16)-$FLAVOR"
if [ -f "$VENDOR/.stamp" ] && [ "$(cat "$VENDOR/.stamp")" = "$stamp_want" ] \
   && [ -e "$VENDOR/onnxruntime/libonnxruntime.so" ] && [ -e "$VENDOR/livekit/liblivekit_ffi.so" ] \
   && [ -e "$VENDOR/livekit/ffi.fds" ] \
   && { [ "$FLAVOR" != gpu ] || [ -n "$(ls -A "$VENDOR/cuda" 2>/dev/null)" ]; }; then
  say "already done ($VENDOR)"
  exit 0
fi

PY=${PYTHON:-python3}
if ! $PY -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing python3-pip"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  else
    echo "setup: need python3 with pip (apt-get install python3-pip)" >&2; exit 1
  fi
fi

mkdir -p "$VENDOR/wheels" "$VENDOR/onnxruntime" "$VENDOR/livekit"

fetch() { # name -> path of the verified wheel
  local name=$1 ver file sum tag t tags plats=()
  ver=$(pin "$name" 2); file=$(pin "$name" 3); sum=$(pin "$name" 4)
  local path="$VENDOR/wheels/$file"
  # pip matches --platform exactly, so ask for the platform tags the pinned file carries
  # (for the CPU pins that is manylinux_2_28_x86_64 alone).
  tag=${file%.whl}; tag=${tag##*-}
  IFS=. read -r -a tags <<<"$tag"
  for t in "${tags[@]}"; do plats+=(--platform "$t"); done
  if [ ! -f "$path" ] || ! echo "$sum  $path" | sha256sum -c --status; then
    rm -f "$path"
    say "downloading $name==$ver"
    $PY -m pip download --quiet --no-deps --only-binary=:all: "${plats[@]}" \
      --python-version 3.11 --implementation cp -d "$VENDOR/wheels" "$name==$ver" >&2
  fi
  if ! echo "$sum  $path" | sha256sum -c --status; then
    echo "setup: sha256 mismatch for $file (expected $sum); refusing to use it" >&2
    rm -f "$path"; exit 1
  fi
  echo "$path"
}

ort_whl=$(fetch "$ORT_PKG")
lk_whl=$(fetch livekit)
rm -f "$VENDOR"/onnxruntime/libonnxruntime*
$PY scripts/vendor_extract.py ort "$ort_whl" "$VENDOR/onnxruntime"
ln -sf "libonnxruntime.so.$(pin "$ORT_PKG" 2)" "$VENDOR/onnxruntime/libonnxruntime.so"
$PY scripts/vendor_extract.py livekit "$lk_whl" "$VENDOR/livekit"
if [ "$FLAVOR" = gpu ]; then
  # The CUDA libraries onnxruntime-gpu's CUDA provider loads, flat in one folder (their RUNPATH is $ORIGIN).
  # The driver (libcuda.so.1) is not here: it comes from the host (NVIDIA Container Toolkit in containers).
  rm -rf "$VENDOR/cuda"; mkdir -p "$VENDOR/cuda"
  for name in $(awk '$1 ~ /^nvidia-/ {print $1}' scripts/pins.txt); do
    whl=$(fetch "$name")
    $PY - "$whl" "$VENDOR/cuda" <<'PYEOF'
import os, re, shutil, sys, zipfile
wheel, out = sys.argv[1:3]
n = 0
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if re.fullmatch(r"nvidia/[^/]+/lib/lib[^/]+\.so(\.[0-9]+)*", name):
            dest = os.path.join(out, os.path.basename(name))
            with zf.open(name) as src, open(dest + ".tmp", "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
            os.chmod(dest + ".tmp", 0o755)
            os.replace(dest + ".tmp", dest)
            n += 1
if n == 0:
    sys.exit(f"no nvidia/*/lib/lib*.so* in {wheel}")
PYEOF
  done
fi
echo "$stamp_want" > "$VENDOR/.stamp"
say "done: ORT_DYLIB_PATH=$VENDOR/onnxruntime/libonnxruntime.so LIVEKIT_FFI_PATH=$VENDOR/livekit/liblivekit_ffi.so"
if [ "$FLAVOR" = gpu ]; then say "GPU: LD_LIBRARY_PATH=$VENDOR/cuda (the CUDA libraries onnxruntime-gpu loads)"; fi
