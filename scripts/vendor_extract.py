#!/usr/bin/env python3
"""Extract what lipcast needs at run time from the pinned wheels, without installing them.

  vendor_extract.py ort <wheel> <out-dir>       libonnxruntime*.so* from onnxruntime(-gpu)
  vendor_extract.py livekit <wheel> <out-dir>   liblivekit_ffi.so and ffi.fds (FileDescriptorSet)

The FileDescriptorSet is rebuilt from the serialized FileDescriptorProtos that the wheel's generated
`livekit/rtc/_proto/*_pb2.py` modules embed, so the Rust types match the shipped engine exactly and no
protobuf runtime or protoc is needed.
"""
import ast
import os
import re
import sys
import zipfile


def write(path, data, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def extract_ort(zf, out):
    found = False
    for name in zf.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime") and ".so" in base:
            write(os.path.join(out, base), zf.read(name), 0o755)
            found = True
    if not found:
        sys.exit("no libonnxruntime in wheel")


def extract_livekit(zf, out):
    write(os.path.join(out, "liblivekit_ffi.so"), zf.read("livekit/rtc/resources/liblivekit_ffi.so"), 0o755)
    blobs = []
    pattern = re.compile(r"AddSerializedFile\((b'.*?')\)\s*\n", re.S)
    for name in sorted(zf.namelist()):
        if name.startswith("livekit/rtc/_proto/") and name.endswith("_pb2.py"):
            m = pattern.search(zf.read(name).decode("utf-8"))
            if not m:
                sys.exit(f"no serialized descriptor in {name}")
            blobs.append(ast.literal_eval(m.group(1)))
    if not blobs:
        sys.exit("no *_pb2.py descriptors in wheel")
    # FileDescriptorSet { repeated FileDescriptorProto file = 1; }
    fds = b"".join(b"\x0a" + varint(len(b)) + b for b in blobs)
    write(os.path.join(out, "ffi.fds"), fds)


def main():
    kind, wheel, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        {"ort": extract_ort, "livekit": extract_livekit}[kind](zf, out)


if __name__ == "__main__":
    main()
