"""pyblaze_pl inside a Lightning code base: PyBlaze and Lightning callbacks mixed, a Lightning
logger, a torchmetrics metric, and a LightningModule trained through ``Estimator.fit``.

Usage:
    python examples/lightning_interop.py [--epochs N] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytorch_lightning as pl
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchmetrics
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X
from pyblaze_pl import datasets


class Classifier(xnn.Estimator, nn.Module):
    """A plain PyTorch model with PyBlaze's fit/evaluate/predict."""

    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(3 * 32 * 32, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x):
        return self.layers(x)


class LitClassifier(xnn.Estimator, pl.LightningModule):
    """A LightningModule with its own steps; Estimator adds PyBlaze's fit/History/callbacks."""

    def __init__(self):
        super().__init__()
        self.model = Classifier()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return optim.Adam(self.parameters(), lr=1e-3)


def main(argv: list[str] | None = None) -> dict[str, xnn.History]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--output-dir", default="runs/lightning_interop")
    args = parser.parse_args(argv)
    output = Path(args.output_dir)
    pl.seed_everything(0, verbose=False)

    train_dataset, val_dataset = datasets.digits(train=True).random_split(0.8, 0.2)
    train_loader = train_dataset.loader(batch_size=64, shuffle=True)
    val_loader = val_dataset.loader(batch_size=512)

    # 1. A PyTorch model: PyBlaze and Lightning callbacks in one list, a Lightning logger.
    model = Classifier()
    checkpoint = ModelCheckpoint(dirpath=output / "checkpoints", monitor="val_loss", save_last=True)
    history = model.fit(
        train_loader,
        val_data=val_loader,
        epochs=args.epochs,
        optimizer=optim.Adam(model.parameters(), lr=1e-3),
        loss=nn.CrossEntropyLoss(),
        metrics={
            "accuracy": X.accuracy,  # PyBlaze's function, computed streaming
            "macro_f1": torchmetrics.F1Score(task="multiclass", num_classes=10, average="macro"),
        },
        callbacks=[
            xnn.BatchProgressLogger(),
            EarlyStopping(monitor="val_accuracy", mode="max", patience=3),  # Lightning's
            checkpoint,
            LearningRateMonitor(),
        ],
        trainer_kwargs={"logger": CSVLogger(output, name="logs")},
    )
    best = checkpoint.best_model_score
    print(f"Best checkpoint: {checkpoint.best_model_path} (val_loss {best:.5f})")
    history.plot().savefig(output / "history.png")

    # 2. A LightningModule: its own steps drive training, PyBlaze adds History and callbacks.
    lit = LitClassifier()
    lit_history = lit.fit(
        train_loader,
        val_data=val_loader,
        epochs=args.epochs,
        metrics={"accuracy": X.accuracy},
        callbacks=[xnn.BatchProgressLogger(), xnn.EarlyStopping(patience=3)],
    )
    print(lit.evaluate(val_loader, metrics={"accuracy": X.accuracy}))
    return {"model": history, "lightning_module": lit_history}


if __name__ == "__main__":
    main()
