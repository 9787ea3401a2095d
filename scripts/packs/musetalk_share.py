#!/usr/bin/env python3
"""CPU analogue of "one model copy per worker process" against "one shared inference process": memory and
throughput of N sessions of a generator pack, measured with ONNX Runtime's CPU provider (the worker's runtime).

    .venv-musetalk/bin/python scripts/packs/musetalk_share.py PACK_DIR [--sessions 2] [--calls 2]

`separate`: N processes, each creating the pack's sessions (audio, prepare, generate) and running `--calls`
generate.onnx calls at the pack's batch size, one intra-op thread each, as N lipcast workers would. `shared`: one
process creating the sessions once and N threads calling generate.onnx on them concurrently (ONNX Runtime's
`run` is thread-safe), as one inference server holding one copy would. Prints each process's peak RSS, the
machine-wide sum, and frames per second over all sessions. On a GPU the same split holds for the weights (one
copy per process vs one), while activations are per concurrent call either way; the CUDA context per process
has no CPU analogue here.
"""

import argparse
import multiprocessing as mp
import pathlib
import resource
import threading
import time
import tomllib

import numpy as np
import onnxruntime as ort


def load(pack):
    manifest = tomllib.loads((pack / "manifest.toml").read_text())
    files = {f["role"]: f for f in manifest["files"]}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sessions = {role: ort.InferenceSession(str(pack / files[role]["path"]), opts,
                                           providers=["CPUExecutionProvider"])
                for role in ("audio", "prepare", "generate")}
    return manifest, files, sessions


def feeds(manifest, files):
    b = manifest["generator"]["batch_size"]
    rng = np.random.default_rng(0)
    out = {}
    for t in files["generate"]["inputs"]:
        shape = [b if d == -1 else d for d in t["shape"]]
        out[t["name"]] = rng.standard_normal(shape).astype(np.float32) * 0.5
    return out, b


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def separate_child(pack, calls, queue):
    manifest, files, sessions = load(pack)
    loaded = rss_mb()
    f, b = feeds(manifest, files)
    start = time.time()
    for _ in range(calls):
        sessions["generate"].run(None, f)
    queue.put((loaded, rss_mb(), calls * b / (time.time() - start)))


def separate(pack, n, calls):
    queue = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=separate_child, args=(pack, calls, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    for i, (loaded, peak, fps) in enumerate(results):
        print(f"separate: process {i}: RSS after load {loaded:.0f} MB, peak {peak:.0f} MB, {fps:.2f} frames/s")
    print(f"separate: {n} processes: peak RSS sum {sum(r[1] for r in results):.0f} MB, "
          f"{sum(r[2] for r in results):.2f} frames/s in all")


def shared(pack, n, calls):
    manifest, files, sessions = load(pack)
    loaded = rss_mb()
    f, b = feeds(manifest, files)
    done = []

    def session():
        start = time.time()
        for _ in range(calls):
            sessions["generate"].run(None, f)
        done.append(calls * b / (time.time() - start))

    threads = [threading.Thread(target=session) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"shared: 1 process, {n} concurrent sessions: RSS after load {loaded:.0f} MB, peak {rss_mb():.0f} MB, "
          f"{sum(done):.2f} frames/s in all")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pack", type=pathlib.Path)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--calls", type=int, default=2)
    args = ap.parse_args()
    separate(args.pack, args.sessions, args.calls)
    shared(args.pack, args.sessions, args.calls)


if __name__ == "__main__":
    main()
