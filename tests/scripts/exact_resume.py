"""Trains a model with dropout on data shuffled from the global random generator, writing
checkpoints; with --crash-after-batches N the process dies (os._exit) after its N-th batch.

Usage: exact_resume.py OUT_DIR [--crash-after-batches N] [--resume CKPT] [--every-n-steps S]
       [--stateful] [--val-every E] [--ddp] [--hidden H]
Writes OUT_DIR/history.json and OUT_DIR/weights.pt when training ends (process 0 under --ddp).
"""

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn, optim
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_dataset

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X


class Net(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self, hidden):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(8, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, 3)
        )

    def forward(self, x):
        # numpy's and Python's generators must be restored too
        noise = float(np.random.rand()) + random.random()
        return self.layers(x) + 1e-3 * noise


class Crash(xnn.TrainingCallback):
    def __init__(self, after):
        self.after, self.count = after, 0

    def after_batch(self, train_loss):
        self.count += 1
        if self.count == self.after:
            os._exit(3)  # a killed process: no cleanup, no exception handling


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--crash-after-batches", type=int)
    parser.add_argument("--resume")
    parser.add_argument("--every-n-steps", type=int)
    parser.add_argument("--stateful", action="store_true")
    parser.add_argument("--val-every", type=int, default=1)
    parser.add_argument("--ddp", action="store_true")
    parser.add_argument("--hidden", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    model = Net(args.hidden)
    if args.stateful:
        from torchdata.stateful_dataloader import StatefulDataLoader as Loader
    else:
        Loader = DataLoader
    train = Loader(make_dataset(48), batch_size=8, shuffle=True)  # 6 batches (3 per process)
    every = {"every_n_train_steps": args.every_n_steps} if args.every_n_steps else {}
    callbacks = [ModelCheckpoint(dirpath=args.out / "ckpt", save_last=True, **every)]
    if args.crash_after_batches is not None:
        callbacks.append(Crash(args.crash_after_batches))
    options = {"check_val_every_n_epoch": args.val_every}
    if args.ddp:
        options.update(devices=2, strategy="ddp")
    history = model.fit(
        train,
        val_data=DataLoader(make_dataset(24, seed=2), batch_size=8),
        epochs=3,
        optimizer=optim.Adam(model.parameters(), lr=0.05),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy},
        callbacks=callbacks,
        gpu=False,
        ckpt_path=args.resume,
        trainer_kwargs=options,
    )
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        history.save(args.out / "history.json")
        torch.save(model.state_dict(), args.out / "weights.pt")


if __name__ == "__main__":
    main()
