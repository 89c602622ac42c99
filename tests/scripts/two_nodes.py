"""One "node" of a two-node run, started by torchrun (one launcher per node, one process each):
``fit(..., trainer_kwargs={"num_nodes": 2})`` on the CPU (gloo), as on two machines.

Usage: torchrun --nnodes=2 --nproc-per-node=1 --node-rank=R --master-addr=127.0.0.1
           --master-port=PORT two_nodes.py OUT_DIR
Each process writes OUT_DIR/node<R>.json: its History, its evaluation, the world it saw, and the
final weights (OUT_DIR/weights<R>.pt). ``run(batch_size, ...)`` is also what the single-process
reference of tests/test_two_nodes.py calls, with the total batch size.

The loaders are unshuffled, but under DDP Lightning always gives the training loader a
``DistributedSampler(shuffle=True, seed=0)``, which draws ``randperm(N)`` seeded with the epoch
and gives rank ``r`` every second index from ``r``: the global batch ``k`` of an epoch is the
permutation's indices ``16k .. 16k + 15``. The reference run draws the same permutation
(:class:`DistributedOrder`), so it trains on the same global batches.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's library
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import Net, make_dataset, make_loader

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X

SAMPLES, VAL_SAMPLES, EPOCHS = 64, 30, 3


class World(xnn.TrainingCallback):
    """The number of processes training sees."""

    size = 0

    def before_training(self, model, num_epochs):
        initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
        World.size = torch.distributed.get_world_size() if initialized else 1


class DistributedOrder(torch.utils.data.Sampler):
    """The order of Lightning's ``DistributedSampler(shuffle=True, seed=0)`` for one process:
    ``randperm(n)`` seeded with the epoch (0, 1, ...), one epoch per iteration."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.epoch)
        self.epoch += 1
        return iter(torch.randperm(self.n, generator=generator).tolist())


def run(
    batch_size: int, val_batch_size: int, reference: bool = False, **fit_kwargs
) -> tuple[Net, dict, dict]:
    """Trains the shared model; returns it, its History and an evaluation. ``reference``: one
    process drawing the training order that DDP draws (see the module docstring)."""
    torch.manual_seed(0)
    model = Net()
    val_loader = make_loader(make_dataset(VAL_SAMPLES, seed=2), val_batch_size)
    data = make_dataset(SAMPLES)
    sampler = DistributedOrder(SAMPLES) if reference else None
    history = model.fit(
        torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler),
        val_data=val_loader,
        epochs=EPOCHS,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy},
        callbacks=[World()],
        **fit_kwargs,
    )
    evaluation = model.evaluate(val_loader, metrics={"accuracy": X.accuracy}, **fit_kwargs)
    values = {key: history[key] for key in history.keys}
    return model, values, evaluation.to_dict()


def main() -> None:
    out = Path(sys.argv[1])
    node = int(os.environ["GROUP_RANK"])  # torchrun's --node-rank
    model, history, evaluation = run(8, 5, gpu=False, trainer_kwargs={"num_nodes": 2})
    world = {"world_size": World.size, "rank": int(os.environ["RANK"]), "node": node}
    torch.save(model.state_dict(), out / f"weights{node}.pt")
    result = {"history": history, "evaluation": evaluation, "world": world}
    (out / f"node{node}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
