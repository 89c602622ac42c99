"""Per-step training loss for PyBlaze engines on the Trainer (issue 22.3): loggers receive it every
``log_every_n_steps`` steps, the progress bar shows it, step-level monitors see the current batch's
value, and the epoch's ``train_loss`` stays PyBlaze's mean."""

from __future__ import annotations

import csv
import importlib

import pytest
import torch
from conftest import make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def pl_ns(request):
    return importlib.import_module(request.param)


class Net(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(8, 3)

    def forward(self, x):
        return self.layer(x)


def fit(net, **kwargs):
    loader = make_loader(make_dataset(80), 8)  # 10 batches an epoch
    return net.fit(loader, epochs=2, optimizer=optim.SGD(net.parameters(), lr=0.1),
                   loss=nn.CrossEntropyLoss(), gpu=False, **kwargs)  # fmt: skip


@pytest.mark.parametrize("every", [1, 3, 50])
def test_loggers_get_the_training_loss_every_n_steps(pl_ns, tmp_path, every):
    logger = pl_ns.loggers.CSVLogger(tmp_path, name="run")
    history = fit(Net(), trainer_kwargs={"logger": logger, "log_every_n_steps": every})
    with open(f"{logger.log_dir}/metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("train_loss")]
    micro = history.micro_train_loss
    # Each epoch's last row is its value, written when it ends; the others are step rows, written
    # when (step + 1) % every == 0, as Lightning writes them.
    last = [max(i for i, r in enumerate(rows) if r["epoch"] == e) for e in ("0", "1")]
    epoch_rows = [rows[i] for i in last]
    step_rows = [r for i, r in enumerate(rows) if i not in last]
    expected_steps = [s for s in range(20) if (s + 1) % every == 0]
    assert [int(r["step"]) for r in step_rows] == expected_steps
    assert [float(r["train_loss"]) for r in step_rows] == pytest.approx(
        [micro[s] for s in expected_steps], abs=1e-6
    )
    assert [float(r["train_loss"]) for r in epoch_rows] == pytest.approx(
        history.train_loss, abs=1e-6
    )


def test_step_level_monitors_and_the_progress_bar_see_the_current_batch(pl_ns, tmp_path):
    seen, bar = [], []

    class Peek(pl_ns.Callback):
        def on_train_batch_end(self, trainer, *args):
            seen.append(float(trainer.callback_metrics["train_loss"]))
            bar.append(float(trainer.progress_bar_metrics["train_loss"]))

    every_two = pl_ns.callbacks.ModelCheckpoint(
        dirpath=tmp_path, monitor="train_loss", every_n_train_steps=2, save_top_k=1
    )
    history = fit(Net(), callbacks=[Peek(), every_two])
    assert seen == pytest.approx(history.micro_train_loss, abs=1e-6)
    assert bar == pytest.approx(history.micro_train_loss, abs=1e-6)
    # ranked by the loss of the batch at each 2nd step, not by an epoch's value
    assert float(every_two.best_model_score) == pytest.approx(
        min(history.micro_train_loss[1::2]), abs=1e-6
    )


def test_epoch_level_monitors_still_see_pyblazes_mean(pl_ns, tmp_path):
    seen = []

    class Peek(pl_ns.Callback):
        def on_train_epoch_end(self, trainer, *args):
            seen.append(float(trainer.callback_metrics["train_loss"]))

    history = fit(Net(), callbacks=[Peek()])
    assert seen == pytest.approx(history.train_loss, abs=1e-6)


def test_evaluate_logs_its_metrics_under_the_historys_names(pl_ns, tmp_path):
    # Issue 22.4: evaluate used to log nothing and leave callback_metrics empty.
    seen = {}

    class Peek(pl_ns.Callback):
        def on_validation_end(self, trainer, *args):
            seen.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    net = Net()
    fit(net)
    logger = pl_ns.loggers.CSVLogger(tmp_path, name="eval")
    evaluation = net.evaluate(
        make_loader(make_dataset(40, seed=3), 8),
        metrics={"accuracy": X.accuracy, "loss": nn.CrossEntropyLoss()},
        callbacks=[Peek()],
        trainer_kwargs={"logger": logger},
        gpu=False,
    )
    assert evaluation.keys == ["accuracy", "loss"]  # PyBlaze's Evaluation, as before
    expected = {"val_accuracy": evaluation["accuracy"], "val_loss": evaluation["loss"]}
    assert seen == pytest.approx(expected, abs=1e-6)  # the names fit's History uses
    with open(f"{logger.log_dir}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    assert {k: float(rows[0][k]) for k in expected} == pytest.approx(expected, abs=1e-6)


def test_a_lightning_modules_evaluate_returns_the_historys_names(pl_ns):
    class Lit(xnn.Estimator, pl_ns.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layer = nn.Linear(8, 3)

        def forward(self, x):
            return self.layer(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.layer(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.layer(x), y)
            self.log("val_loss", loss, on_step=True, on_epoch=True)

        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.1)

    lit, val = Lit(), make_loader(make_dataset(40, seed=3), 8)
    history = lit.fit(make_loader(make_dataset(48), 8), val_data=val, epochs=1, gpu=False)
    evaluation = lit.evaluate(val, gpu=False)
    assert "val_loss" in evaluation.keys  # validate itself returns only val_loss_epoch
    assert [k for k in history.keys if k.startswith("val_")] == evaluation.keys
    assert evaluation["val_loss"] == pytest.approx(history.val_loss[-1], abs=1e-6)
    with_metrics = lit.evaluate(val, metrics={"accuracy": X.accuracy}, gpu=False)
    assert with_metrics.keys == ["accuracy", *evaluation.keys]  # metrics= once, PyBlaze's name
