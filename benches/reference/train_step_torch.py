"""PyTorch reference for the training-throughput benchmark: the same two-branch model
(image encoder + metadata encoder, fusion, head) and the same full AdamW train step at the
same batch and size, on the CPU with the same thread count. Prints one JSON line per encoder.
An optional sixth argument, f16 or bf16, runs the step under CPU autocast in that dtype (f16
with a GradScaler), PyTorch's mixed precision, to compare with `--precision` on our side.
Run by `cargo xtask bench` in its cached venv (PyTorch is installed once)."""

import json
import sys
import time

import torch
import torch.nn as nn
import torchvision
from efficientnet_lite_pytorch import EfficientNet



class CustomCnn(nn.Module):
    """Mirror of model-core's custom_cnn."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for c in (32, 64, 128, 256):
            layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            cin = c
        layers += [nn.Conv2d(256, 512, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.features = 512

    def forward(self, x):
        return self.net(x)


class Lite0(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = EfficientNet.from_name("efficientnet-lite0")
        self.features = 1280

    def forward(self, x):
        return self.net.extract_features(x).mean((2, 3))


class R18(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torchvision.models.resnet18()
        self.net.fc = nn.Identity()
        self.features = 512

    def forward(self, x):
        return self.net(x)


class Model(nn.Module):
    def __init__(self, enc, sources=4, classes=5):
        super().__init__()
        self.enc = enc
        self.meta = nn.Sequential(nn.Linear(2, 64), nn.BatchNorm1d(64), nn.ReLU())
        self.fusion = nn.Sequential(nn.Linear(enc.features + 64 + sources, 256), nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(256, classes))

    def forward(self, img, coords, src):
        return self.head(self.fusion(torch.cat([self.enc(img), self.meta(coords), src], 1)))


make = {"custom_cnn": CustomCnn, "efficientnet_lite0": Lite0, "resnet18": R18}


def main():
    steps, size, batch, threads = (int(a) for a in sys.argv[1:5])
    encoders = sys.argv[5].split(",")
    precision = sys.argv[6] if len(sys.argv) > 6 else "f32"
    dtype = {"f32": None, "f16": torch.float16, "bf16": torch.bfloat16}[precision]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for name in encoders:
        model = Model(make[name]())
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        loss_fn = nn.CrossEntropyLoss()
        img = torch.rand(batch, 3, size, size) * 4 - 2
        coords = torch.rand(batch, 2) * 2 - 1
        src = torch.eye(4)[torch.arange(batch) % 4]
        y = torch.arange(batch) % 5

        scaler = torch.amp.GradScaler("cpu") if dtype == torch.float16 else None

        def step():
            opt.zero_grad()
            if dtype is None:
                loss = loss_fn(model(img, coords, src), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                return
            with torch.autocast("cpu", dtype=dtype):
                loss = loss_fn(model(img, coords, src), y)
            if scaler is None:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()

        step()  # warm-up
        t = time.perf_counter()
        for _ in range(steps):
            step()
        s = time.perf_counter() - t
        print(json.dumps({"bench": "train_step_torch", "encoder": name, "batch": batch, "size": size,
                          "steps": steps, "seconds": s, "images_per_s": steps * batch / s,
                          "torch": torch.__version__, "threads": threads, "precision": precision}), flush=True)


if __name__ == "__main__":
    main()
