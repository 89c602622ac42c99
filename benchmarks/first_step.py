"""Import time and time to the first training step of one contender, in a fresh process.

Usage:
    python benchmarks/first_step.py CONTENDER [--threads N]

Imports the contender's framework first (and nothing heavy before it), then builds the 16-32-4
MLP and its data and trains on one batch. Prints one JSON line with wall-clock timestamps
(``time.time()``): after the import and when the first optimizer step has finished. The parent
(benchmarks/run.py) subtracts its own timestamp taken just before starting the process, so the
numbers include the interpreter's start-up, the same for every contender.
"""

from __future__ import annotations

import json
import sys
import time

MODULES = {
    "hand": "torch",
    "lightning": "pytorch_lightning",
    "pyblaze_pl": "pyblaze_pl.nn",
    "pyblaze_pl_trainer": "pyblaze_pl.nn",
    "pyblaze": "pyblaze.nn",
}
MARKER = "BENCH-JSON "


def main() -> int:
    contender = sys.argv[1]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
    try:
        __import__(MODULES[contender])
    except ImportError as e:
        print(MARKER + json.dumps({"contender": contender, "skipped": str(e)}), flush=True)
        return 0
    imported = time.time()

    import logging
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common as common
    import torch
    from torch import nn

    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    common.set_threads(threads)
    marks: list[float] = []
    dataset = common.make_dataset("b", 32, seed=0)
    loader = common.one_batch_loader(dataset, 32)
    torch.manual_seed(0)

    if contender == "hand":
        model = common.MLP()
        optimizer = torch.optim.Adam(model.parameters())
        loss_fn = nn.CrossEntropyLoss()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            marks.append(time.time())
    elif contender == "lightning":
        import pytorch_lightning as pl

        class Lit(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.model = common.MLP()

            def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
                x, y = batch
                return nn.functional.cross_entropy(self.model(x), y)

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.Adam(self.parameters())

        class Mark(pl.Callback):
            def on_train_batch_end(self, *args: object) -> None:
                marks.append(time.time())

        pl.Trainer(
            max_epochs=1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Mark()],
        ).fit(Lit(), loader)
    elif contender in ("pyblaze_pl", "pyblaze_pl_trainer"):
        import pyblaze_pl.nn as xnn

        class Model(xnn.Estimator, common.MLP):
            __engine__ = xnn.SupervisedEngine

        class Mark(xnn.TrainingCallback):
            def after_batch(self, *args: object) -> None:
                marks.append(time.time())

        model = Model()
        model.fit(
            loader,
            epochs=1,
            optimizer=torch.optim.Adam(model.parameters()),
            loss=nn.CrossEntropyLoss(),
            callbacks=[Mark()],
            gpu=False,
            runner="trainer" if contender == "pyblaze_pl_trainer" else "auto",
        )
    else:
        import pyblaze.nn as pxnn

        class Mark(pxnn.TrainingCallback):
            def after_batch(self, *args: object) -> None:
                marks.append(time.time())

        model = common.MLP()
        pxnn.MLEEngine(model).train(
            loader,
            epochs=1,
            optimizer=torch.optim.Adam(model.parameters()),
            loss=nn.CrossEntropyLoss(),
            callbacks=[Mark()],
            gpu=False,
        )
    result = {"contender": contender, "imported": imported, "first_step": marks[0]}
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
