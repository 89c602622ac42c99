"""The PyBlaze tutorial "Training a Classifier", run with pyblaze_pl.

Trains the tutorial's CNN with the tutorial's own calls and prints PyBlaze's log. By default it
uses scikit-learn's bundled digits images (no download; made into 3x32x32 tensors so the CNN
runs unchanged); ``--dataset cifar10 --data-root DIR`` trains on the real CIFAR-10 (downloaded
into DIR when it is missing and the network allows).

Usage:
    python examples/train_classifier.py [--dataset {digits,cifar10}] [--data-root DIR]
        [--epochs N] [--output-dir DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytorch_lightning as pl
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X
from pyblaze_pl import datasets


class Model(xnn.Estimator, nn.Module):
    """The tutorial's CNN, unchanged."""

    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 400)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def load_data(dataset: str, data_root: str):
    if dataset == "digits":
        return datasets.digits(train=True), datasets.digits(train=False)
    return (
        datasets.cifar10(data_root, train=True, download=True),
        datasets.cifar10(data_root, train=False, download=True),
    )


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["digits", "cifar10"], default="digits")
    parser.add_argument("--data-root", default="~/Downloads/")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--output-dir", default="runs/demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pl.seed_everything(args.seed, verbose=False)

    train_val_dataset, test_dataset = load_data(args.dataset, args.data_root)
    train_dataset, val_dataset = train_val_dataset.random_split(0.8, 0.2)

    # The tutorial asks for 4 loader workers; a smaller machine gets one per core.
    workers = min(4, os.cpu_count() or 1)
    train_loader = train_dataset.loader(batch_size=256, num_workers=workers, shuffle=True)
    val_loader = val_dataset.loader(batch_size=2048)
    test_loader = test_dataset.loader(batch_size=2048)

    model = Model()
    optimizer = optim.Adam(model.parameters())
    history = model.fit(
        train_loader,
        val_data=val_loader,
        epochs=args.epochs,
        optimizer=optimizer,
        loss=nn.CrossEntropyLoss(),
        callbacks=[xnn.BatchProgressLogger(), xnn.EarlyStopping(patience=3)],
        metrics={"accuracy": X.accuracy},
    )

    # History.plot draws with titles, axis labels and epochs 1, 2, ... (no window is opened).
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    history.plot(["micro_train_loss"]).savefig(output / "loss.png", dpi=150)
    history.plot(["train_loss", "val_loss"]).savefig(output / "validation.png", dpi=150)

    evaluation = model.evaluate(
        test_loader,
        callbacks=[xnn.PredictionProgressLogger()],
        metrics={"accuracy": X.accuracy},
    )
    print(f"Our model achieves an accuracy of {evaluation.accuracy:.2%}.")
    print(f"Plots: {output / 'loss.png'}, {output / 'validation.png'}")
    return evaluation.accuracy


if __name__ == "__main__":
    main()
