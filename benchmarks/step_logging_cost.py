"""What the per-step ``train_loss`` costs an engine on the Trainer (issue 22).

The run logs each batch's loss with Lightning's ``self.log`` only when something can read it (a
logger, a progress bar or a Lightning callback). This times the same ``fit`` (an MLP, batches of
64, on the Trainer) without a Lightning callback and with an empty one, which turns the logging
on, alternating them in rounds; it prints the median time per step of each and their ratio.

Usage:
    .venv/bin/python benchmarks/step_logging_cost.py              # 500 batches, 5 rounds
    .venv/bin/python benchmarks/step_logging_cost.py --batches 200 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

import pyblaze_pl.nn as xnn


class MLP(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def seconds_per_step(model: MLP, loader: DataLoader, callbacks: list) -> float:
    start = time.perf_counter()
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    loss = nn.CrossEntropyLoss()
    model.fit(loader, epochs=1, optimizer=optimizer, loss=loss, callbacks=callbacks,
              runner="trainer", gpu=False)  # fmt: skip
    return (time.perf_counter() - start) / len(loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    n = 64 * args.batches
    loader = DataLoader(TensorDataset(torch.randn(n, 32), torch.randint(0, 10, (n,))), 64)
    model = MLP()
    seconds_per_step(model, loader, [])  # warm-up: imports, first Trainer
    plain, logged = [], []
    for _ in range(args.rounds):
        plain.append(seconds_per_step(model, loader, []))
        logged.append(seconds_per_step(model, loader, [pl.Callback()]))
    a, b = statistics.median(plain) * 1e3, statistics.median(logged) * 1e3
    print(f"ms per step: not logged {a:.3f}, logged {b:.3f}; +{b - a:.3f} ms ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
