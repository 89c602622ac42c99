"""What a Lightning user reads from a run of a LightningModule estimator (issue 22): the History's
``train_loss``, checked against a plain Lightning run of the same module and data."""

from __future__ import annotations

import importlib

import pytest
import torch
from conftest import make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def pl_ns(request):
    """The Lightning namespace a test runs on: ``pytorch_lightning`` or ``lightning.pytorch``."""
    return importlib.import_module(request.param)


def _readme_module(pl, estimator: bool):
    """Lightning's README pattern: ``self.log("train_loss", loss)`` in ``training_step``."""
    bases = (xnn.Estimator, pl.LightningModule) if estimator else (pl.LightningModule,)

    class Lit(*bases):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layer = nn.Linear(8, 3)
            self.returned = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.layer(x), y)
            self.log("train_loss", loss)
            self.returned.append(loss.detach().item())
            return loss

        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.5)

    return Lit()


def test_train_loss_is_the_epoch_mean_of_returned_losses(pl_ns):
    # Issue 22.1: a step-only self.log("train_loss", loss) used to become the epoch's train_loss.
    loader = make_loader(make_dataset(48), 8)
    plain = _readme_module(pl_ns, estimator=False)
    trainer = pl_ns.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(plain, loader)
    lit = _readme_module(pl_ns, estimator=True)
    history = lit.fit(loader, epochs=2, gpu=False)
    assert lit.returned == pytest.approx(plain.returned, abs=1e-6)
    per_epoch = len(loader)
    means = [sum(plain.returned[i : i + per_epoch]) / per_epoch for i in (0, per_epoch)]
    assert history.train_loss == pytest.approx(means, abs=1e-6)
    assert history.train_loss[-1] != pytest.approx(plain.returned[-1], abs=1e-6)
    assert history.micro_train_loss == pytest.approx(plain.returned, abs=1e-6)
