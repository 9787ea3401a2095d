"""ONNX export, checks against PyTorch under ONNX Runtime, and the parameter / FLOP count from the graphs."""

import hashlib
import pathlib
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

# Above this a file is written with its weights in one external data file beside it (protobuf's 2 GiB limit).
EXTERNAL_ABOVE = 1_500_000_000


def export(module, args, path, input_names, output_names, dynamic):
    """Exports with the TorchScript exporter (opset 17) to `path`; weights go to `path.name + ".data"` when the
    model is large. Returns the list of files written (the .onnx first) and the seconds it took."""
    path = pathlib.Path(path)
    start = time.time()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = pathlib.Path(tmp) / "raw.onnx"
        with torch.no_grad():
            torch.onnx.export(module, args, str(raw), input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic, opset_version=17, do_constant_folding=True, dynamo=False)
        model = onnx.load(str(raw))  # pulls in any external tensors the exporter wrote
    size = sum(t.ByteSize() for t in model.graph.initializer)
    files = [path]
    if size > EXTERNAL_ABOVE:
        data = path.name + ".data"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
        files.append(path.parent / data)
    else:
        onnx.save_model(model, str(path))
    for f in files:
        f.chmod(0o644)  # onnx writes external data 0600; a pack is read by whichever user runs the worker
    return files, time.time() - start


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(path, feeds, threads):
    """Runs `path` on CPU: (outputs, seconds of the run, not counting the session's creation)."""
    sess = session(path, threads)
    start = time.time()
    out = sess.run(None, {k: v for k, v in feeds.items()})
    return out, time.time() - start


def max_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} != {b.shape}")
    return float(np.max(np.abs(a - b))), float(np.max(np.abs(b)))


def _shape(vi):
    dims = vi.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _node_flops(node, shapes):
    """2 x multiply-adds of a Conv, ConvTranspose, MatMul or Gemm node; None when a shape is unknown."""
    ins = [shapes.get(n) for n in node.input]
    out = shapes.get(node.output[0])
    known = lambda s: s is not None and None not in s  # noqa: E731
    if not (known(out) and known(ins[0]) and known(ins[1])):
        return None
    if node.op_type == "Conv":  # weight [Cout, Cin/group, k...]: every output element meets Cin/group * k weights
        return 2 * int(np.prod(out)) * int(np.prod(ins[1][1:]))
    if node.op_type == "ConvTranspose":  # weight [Cin, Cout/group, k...]: every input element meets Cout/group * k
        return 2 * int(np.prod(ins[0])) * int(np.prod(ins[1][1:]))
    if node.op_type == "MatMul":
        return 2 * int(np.prod(out)) * ins[0][-1]
    trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)  # Gemm
    return 2 * int(np.prod(out)) * (ins[0][0] if trans_a else ins[0][-1])


def count(path, fixed):
    """Parameters (initialiser elements) and FLOPs of one run of the graph at `fixed` input shapes ({name: shape}),
    counted over Conv, ConvTranspose, MatMul and Gemm nodes (2 FLOPs per multiply-add) with shapes from ONNX
    Runtime's symbolic shape inference (plain ONNX inference loses the shapes after computed Reshapes). Norms,
    activations, softmax and elementwise nodes are left out (a few percent). Returns (params, flops, nodes whose
    shapes stayed unknown, flops by upstream module: the node names' first path component, e.g. unet, decoder, encoder)."""
    model = onnx.load(str(path), load_external_data=False)
    for inp in model.graph.input:
        if inp.name in fixed:
            for d, v in zip(inp.type.tensor_type.shape.dim, fixed[inp.name]):
                d.Clear()
                d.dim_value = v
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    # Weights kept in an external file become graph inputs of their shape: shape inference needs their shapes,
    # never their values, and the model then stays small enough to be serialised for inference.
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for t in external:
        model.graph.initializer.remove(t)
        model.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[vi.name] = _shape(vi)
    flops, unknown, parts = 0, 0, {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
            continue
        f = _node_flops(node, shapes)
        if f is None:
            unknown += 1
            continue
        flops += f
        part = node.name.strip("/").split("/")[0] or "graph"
        parts[part] = parts.get(part, 0) + f
    return params, flops, unknown, parts


def ort_param_dtypes(path):
    """Element types of the initialisers (to say what an fp16 file really holds)."""
    model = onnx.load(str(path), load_external_data=False)
    kinds = {}
    for t in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(t.data_type)
        kinds[name] = kinds.get(name, 0) + int(np.prod(t.dims))
    return kinds

