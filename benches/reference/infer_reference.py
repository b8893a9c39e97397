"""References for the native inference benchmark (run by `cargo xtask bench`): the shipped
AccessAtlas model under onnxruntime (its own ONNX export, one file per batch size) and under
PyTorch (the architecture mirror of train_step_torch.py with the bundle's weights, read from
its safetensors export), CPU, same thread count. One JSON line per runtime and batch.

usage: infer_reference.py MODEL.safetensors THREADS REPEAT ONNX_B1 [ONNX_B16 ...]
"""
import json
import struct
import sys
import time

import numpy as np
import onnxruntime as ort

st_path, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
onnx_files = sys.argv[4:]


def p50(f):
    f()  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return sorted(ts)[len(ts) // 2]


def inputs(batch):
    rng = np.random.default_rng(7)
    img = rng.uniform(-2, 2, (batch, 3, 224, 224)).astype(np.float32)
    coords = rng.uniform(-1, 1, (batch, 2)).astype(np.float32)
    src = np.eye(4, dtype=np.float32)[np.arange(batch) % 4]
    return img, coords, src


batches = []
for path in onnx_files:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    batch = sess.get_inputs()[0].shape[0]
    batches.append(batch)
    names = [i.name for i in sess.get_inputs()]
    feeds = dict(zip(names, inputs(batch)))
    ms = p50(lambda: sess.run(None, feeds))
    print(json.dumps({"bench": "infer_onnxruntime", "batch": batch, "p50_ms": ms,
                      "onnxruntime": ort.__version__, "threads": threads}), flush=True)

try:
    import torch
except ImportError:
    sys.exit(0)
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from train_step_torch import Lite0, Model  # noqa: E402

torch.set_num_threads(threads)


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        assert v["dtype"] == "F32", v["dtype"]
        out[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(v["shape"]).copy())
    return out


def torch_name(k):
    if k.startswith("encoder."):
        parts = k[len("encoder."):].split(".")
        return "enc.net." + ".".join(p if p.isdigit() or p in ("weight", "bias", "running_mean", "running_var") else "_" + p for p in parts)
    return {"meta_fc": "meta.0", "meta_bn": "meta.1", "fusion": "fusion.0", "head": "head.1"}[k.split(".")[0]] + "." + k.split(".", 1)[1]


state = {torch_name(k): v for k, v in read_safetensors(st_path).items()}
# As many outputs as the bundle's head has (5 feature types, 6 with `none`).
model = Model(Lite0(), classes=state["head.1.weight"].shape[0]).eval()
missing, unexpected = model.load_state_dict(state, strict=False)
missing = [m for m in missing if not m.endswith("num_batches_tracked") and "_fc" not in m]
assert not missing and not unexpected, (missing, unexpected)
for batch in batches:
    img, coords, src = (torch.from_numpy(a) for a in inputs(batch))
    with torch.inference_mode():
        ms = p50(lambda: model(img, coords, src))
    print(json.dumps({"bench": "infer_torch", "batch": batch, "p50_ms": ms, "torch": torch.__version__,
                      "threads": threads}), flush=True)
