"""Does the synthetic ring task have signal? A tiny CNN trained directly on its labelled images.

Writes the ring task exactly as ``hybridssl demo-data`` does (same galaxies, labels and split),
trains a small CNN from scratch on ``--n-train`` images of the train split (flips and quarter
turns: rings have no orientation) and prints its accuracy on the test split. CPU, one thread:
17 min at 64 px on a loaded shared 2-core machine.
Usage: ``python benchmarks/synthetic_ring_cnn.py [--n-train 2000]``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from data_prep.synthetic.writer import write_rings


def tiny_cnn() -> nn.Module:
    def conv(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*conv(3, 16), nn.MaxPool2d(2), *conv(16, 32), nn.MaxPool2d(2), *conv(32, 64),
                         *conv(64, 64), nn.MaxPool2d(2), *conv(64, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 2))


def load(catalog: Path, rows: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([np.asarray(Image.open(catalog.parent / loc)) for loc in rows["file_loc"]])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return x, torch.tensor(rows["ring"].to_numpy())


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(-1)
    return torch.rot90(x, int(torch.randint(4, (1,), generator=gen)), (-2, -1))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (torch.cat([model(part).argmax(1) for part in x.split(256)]) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-downstream", type=int, default=3000, help="ring-task galaxies (demo default)")
    parser.add_argument("--n-train", type=int, default=2000, help="labelled training images used")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        df = write_rings(Path(tmp), args.n_downstream, args.size, args.seed, workers=1)
        catalog = Path(tmp) / "downstream" / "rings.parquet"
        x_train, y_train = load(catalog, df[df["split"] == "train"].head(args.n_train))
        x_test, y_test = load(catalog, df[df["split"] == "test"])
    model = tiny_cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = -(-len(x_train) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            loss = nn.functional.cross_entropy(model(augment(x_train[idx], gen)), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        accuracy = evaluate(model, x_test, y_test)
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.3f}, test accuracy {accuracy:.3f}", flush=True)
    print(f"ring task: tiny CNN trained on {len(x_train)} labelled {args.size}px images for {args.epochs} epochs: "
          f"test accuracy {accuracy:.3f} on {len(x_test)} galaxies ({time.perf_counter() - start:.0f}s)")


if __name__ == "__main__":
    main()
