"""DDP on CPU (gloo), 2 processes: rank 1 stops training after the first epoch, then the script
ends. Exits 0 unless a process fails, also when it fails while the interpreter shuts down.

Usage: ddp_stop_exit.py [--then-all-reduce]
With ``--then-all-reduce``, each process then sums a tensor over the processes itself, as a user's
script may, and keeps it in a global variable until the interpreter shuts down. Without the
library's exit handler, a gloo thread then often still holds that tensor while the interpreter
shuts down, and frees it there: the process aborts. Run as a script, never by pytest itself,
because Lightning re-launches the script once per extra process.
"""

import argparse
import sys
from pathlib import Path

import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from torch import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import Net, make_dataset, make_loader

import pyblaze_pl.nn as xnn


class StopOnRank1(xnn.TrainingCallback):
    def after_epoch(self, metrics):
        if rank_zero_only.rank == 1:
            raise xnn.CallbackException("rank 1 stops")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--then-all-reduce", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Net()
    history = model.fit(
        make_loader(make_dataset(32), 8),
        val_data=make_loader(make_dataset(8, seed=2), 4),
        epochs=3,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=[StopOnRank1()],
        gpu=False,
        trainer_kwargs={"devices": 2, "strategy": "ddp"},
    )
    if len(history) != 1:
        raise SystemExit(
            f"Expected 1 epoch on rank {rank_zero_only.rank}. Received: {len(history)}."
        )
    return args


if __name__ == "__main__":
    if main().then_all_reduce:
        total = torch.ones(1)
        torch.distributed.all_reduce(total)
