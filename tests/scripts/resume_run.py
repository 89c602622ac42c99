"""Trains the test model; with --crash-in-epoch E the process dies (os._exit) during epoch E.

Usage: resume_run.py OUT_DIR [--crash-in-epoch E] [--resume CKPT] [--val-every N]
Writes OUT_DIR/history.json and OUT_DIR/weights.pt when training ends.
"""

import argparse
import os
import sys
from pathlib import Path

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import Net, make_dataset, make_loader

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X


class Crash(xnn.TrainingCallback):
    def __init__(self, epoch):
        self.epoch, self.current = epoch, None

    def before_epoch(self, current, num_iterations):
        self.current = current

    def after_batch(self, train_loss):
        if self.current == self.epoch:
            os._exit(3)  # a killed process: no cleanup, no exception handling


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--crash-in-epoch", type=int)
    parser.add_argument("--resume")
    parser.add_argument("--val-every", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Net()
    callbacks = [
        # With validation every N > 1 epochs, checkpoints are written when validation ends,
        # before the epoch is recorded: the History must still resume exactly.
        ModelCheckpoint(dirpath=args.out / "ckpt", save_last=True),
        xnn.EarlyStopping(patience=3, restore_best=True),
    ]
    if args.crash_in_epoch is not None:
        callbacks.append(Crash(args.crash_in_epoch))
    history = model.fit(
        make_loader(make_dataset(96), 16, shuffle=False),
        val_data=make_loader(make_dataset(40, seed=2), 16),
        epochs=6,
        optimizer=optim.Adam(model.parameters(), lr=0.05),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy},
        callbacks=callbacks,
        gpu=False,
        ckpt_path=args.resume,
        trainer_kwargs={"check_val_every_n_epoch": args.val_every},
    )
    history.save(args.out / "history.json")
    torch.save(model.state_dict(), args.out / "weights.pt")


if __name__ == "__main__":
    main()
