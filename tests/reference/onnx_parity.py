"""Runs an exported AccessAtlas model.onnx with onnxruntime (CPU) on the inputs the Rust test
wrote, and prints the probabilities (softmax of logits / temperature) as JSON.

usage: onnx_parity.py MODEL.onnx INPUTS.json
INPUTS.json: {"temperature": t, "image": [...], "image_shape": [n,3,s,s], "coords": [...],
              "coords_shape": [n,2], "source": [...], "source_shape": [n,k]}
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, inputs = sys.argv[1], json.load(open(sys.argv[2]))
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = {
        name: np.asarray(inputs[key], dtype=np.float32).reshape(inputs[key + "_shape"])
        for name, key in zip(names, ["image", "coords", "source"])
    }
    n = feeds[names[0]].shape[0]
    if sess.get_inputs()[0].shape[0] == 1 and n > 1:
        # A static batch-1 graph: one example at a time.
        logits = np.concatenate([
            sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()})[0] for i in range(n)
        ])
    else:
        (logits,) = sess.run(None, feeds)
    z = logits / inputs["temperature"]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p = p / p.sum(axis=1, keepdims=True)
    print(json.dumps({
        "onnxruntime": ort.__version__,
        "inputs": [[i.name, i.shape] for i in sess.get_inputs()],
        "probabilities": p.tolist(),
    }))


if __name__ == "__main__":
    main()
