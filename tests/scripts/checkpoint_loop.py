"""Trains for a long time, writing last.ckpt after every step: killed with SIGKILL by
tests/test_checkpoint_io.py while it writes. Usage: checkpoint_loop.py <checkpoint folder>."""

import sys

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

import pyblaze_pl.nn as xnn


class Wide(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(8, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.Linear(1024, 3)
        )

    def forward(self, x):
        return self.layers(x)


torch.manual_seed(0)
model = Wide()
data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
checkpoints = ModelCheckpoint(
    dirpath=sys.argv[1], save_last=True, save_top_k=0, every_n_train_steps=1
)
print("started", flush=True)
model.fit(
    DataLoader(data, batch_size=16),
    epochs=10_000,
    optimizer=optim.SGD(model.parameters(), lr=1e-3),
    loss=nn.CrossEntropyLoss(),
    callbacks=[checkpoints],
    gpu=False,
)
