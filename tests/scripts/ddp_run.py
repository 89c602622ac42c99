"""DDP on CPU (gloo): fit, evaluate and predict with 2 processes. Run as a script, never by
pytest itself, because Lightning re-launches the script once per extra process.

Usage: ddp_run.py OUT_DIR [--stop-on-rank-1-after-epoch E]
Each process writes OUT_DIR/rank<R>.json, its own batch losses, and rank 0 the weights after
every epoch (epoch<E>.pt) and at the end (final.pt). When the interpreter exits, after the
library's own exit handlers, each process writes OUT_DIR/exit<R>.json: whether its process group
was still alive, and its gloo threads (Linux).
"""

import argparse
import atexit
import json
import sys
from pathlib import Path

import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from torch import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import Net, make_dataset, make_loader

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X

DDP = {"devices": 2, "strategy": "ddp"}


class Record(xnn.TrainingCallback):
    """Each process's own batch losses; rank 0 saves the weights after every epoch."""

    def __init__(self, model, out, stop_after=None):
        self.model, self.out, self.stop_after = model, out, stop_after
        self.losses, self.epoch = [], 0

    def after_batch(self, train_loss):
        self.losses.append(float(train_loss))

    def after_epoch(self, metrics):
        self.epoch += 1
        if rank_zero_only.rank == 0:
            torch.save(self.model.state_dict(), self.out / f"epoch{self.epoch}.pt")
        if self.epoch == self.stop_after and rank_zero_only.rank == 1:
            raise xnn.CallbackException("rank 1 stops")


def record_exit(out):
    """What is left for the interpreter's shutdown: a gloo thread that is still alive then may
    abort the process."""
    tasks = Path("/proc/self/task")
    names = [(t / "comm").read_text().strip() for t in tasks.iterdir()] if tasks.exists() else []
    state = {
        "process_group": torch.distributed.is_initialized(),
        "gloo_threads": sorted(n for n in names if "gloo" in n or "tcpstore" in n),
    }
    (out / f"exit{rank_zero_only.rank}.json").write_text(json.dumps(state))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--stop-on-rank-1-after-epoch", type=int)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    atexit.register(record_exit, args.out)  # before the library's handlers, so it runs after them
    torch.manual_seed(0)
    model = Net()
    record = Record(model, args.out, args.stop_on_rank_1_after_epoch)
    metrics = {"accuracy": X.accuracy, "f1": X.f1_score}
    val_loader = make_loader(make_dataset(37, seed=2), 5)  # 37: not divisible by 2 processes
    history = model.fit(
        make_loader(make_dataset(96), 8, shuffle=True),
        val_data=val_loader,
        epochs=4,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        metrics=metrics,
        callbacks=[record, xnn.BatchProgressLogger()],
        gpu=False,
        trainer_kwargs=DDP,
    )
    evaluation = model.evaluate(
        val_loader,
        metrics={**metrics, "loss": nn.CrossEntropyLoss()},
        gpu=False,
        trainer_kwargs=DDP,
    )
    predictions = model.predict(val_loader, gpu=False, trainer_kwargs=DDP)
    rank = rank_zero_only.rank
    if rank == 0:
        torch.save(model.state_dict(), args.out / "final.pt")
    torch.save(predictions, args.out / f"predictions{rank}.pt")
    result = {
        "history": history.to_dict(),
        "evaluation": evaluation.to_dict(),
        "local_losses": record.losses,
    }
    (args.out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
