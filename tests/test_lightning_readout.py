"""What a Lightning user reads from a run of a LightningModule estimator (issue 22): the History's
``train_loss``, checked against a plain Lightning run of the same module and data."""

from __future__ import annotations

import importlib

import pytest
import torch
from conftest import make_dataset, make_loader, plain_trainer
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
    plain_trainer(pl_ns, 2, enable_checkpointing=False).fit(plain, loader)
    lit = _readme_module(pl_ns, estimator=True)
    history = lit.fit(loader, epochs=2, gpu=False)
    assert lit.returned == pytest.approx(plain.returned, abs=1e-6)
    per_epoch = len(loader)
    means = [sum(plain.returned[i : i + per_epoch]) / per_epoch for i in (0, per_epoch)]
    assert history.train_loss == pytest.approx(means, abs=1e-6)
    assert history.train_loss[-1] != pytest.approx(plain.returned[-1], abs=1e-6)
    assert history.micro_train_loss == pytest.approx(plain.returned, abs=1e-6)


def _manual_gan(pl, estimator: bool, returns: bool = False):
    """Lightning's manual-optimization pattern (its GAN example, shrunk): two optimizers stepped
    in ``training_step``, which logs per epoch and returns nothing (or the generator's loss)."""
    bases = (xnn.Estimator, pl.LightningModule) if estimator else (pl.LightningModule,)

    class Gan(*bases):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.automatic_optimization = False
            self.generator = nn.Linear(4, 8)
            self.critic = nn.Linear(8, 1)
            self.g_losses = []

        def training_step(self, batch, batch_idx):
            x, _ = batch
            g_opt, c_opt = self.optimizers()
            noise = torch.randn(x.shape[0], 4)
            c_loss = self.critic(self.generator(noise).detach()).mean() - self.critic(x).mean()
            c_opt.zero_grad()
            self.manual_backward(c_loss)
            c_opt.step()
            g_loss = -self.critic(self.generator(noise)).mean()
            g_opt.zero_grad()
            self.manual_backward(g_loss)
            g_opt.step()
            self.log("g_loss", g_loss, on_step=False, on_epoch=True)
            self.log("c_loss", c_loss, on_step=False, on_epoch=True)
            self.g_losses.append(g_loss.detach().item())
            return g_loss if returns else None

        def configure_optimizers(self):
            return optim.SGD(self.generator.parameters(), 0.01), optim.SGD(
                self.critic.parameters(), 0.01
            )

    return Gan()


class _Epochs(xnn.TrainingCallback):
    def __init__(self):
        self.seen = []

    def after_epoch(self, metrics):
        self.seen.append(sorted(metrics.keys))


def test_manual_optimization_records_every_epoch(pl_ns):
    # Issue 22.2: a training_step that returns None used to leave a History of 0 epochs.
    loader = make_loader(make_dataset(48), 8)  # 6 batches
    plain = _manual_gan(pl_ns, estimator=False)
    plain_trainer(pl_ns, 3, enable_checkpointing=False).fit(plain, loader)
    gan = _manual_gan(pl_ns, estimator=True)
    callback = _Epochs()
    history = gan.fit(loader, epochs=3, gpu=False, callbacks=[callback])
    assert len(history) == 3
    assert gan.g_losses == pytest.approx(plain.g_losses, abs=1e-6)  # same training
    means = [sum(plain.g_losses[i : i + 6]) / 6 for i in (0, 6, 12)]
    assert history.g_loss == pytest.approx(means, abs=1e-5)
    assert "train_loss" not in history.keys  # nothing returned: no loss of PyBlaze's
    assert callback.seen == [["c_loss", "g_loss"]] * 3  # PyBlaze callbacks run every epoch
    for name, value in gan.state_dict().items():
        assert torch.equal(value, plain.state_dict()[name]), name


def test_manual_optimization_that_returns_losses_gets_their_mean(pl_ns):
    loader = make_loader(make_dataset(48), 8)
    gan = _manual_gan(pl_ns, estimator=True, returns=True)
    history = gan.fit(loader, epochs=2, gpu=False)
    assert history.micro_train_loss == pytest.approx(gan.g_losses, abs=1e-6)
    assert history.train_loss == pytest.approx(history.g_loss, abs=1e-6)


def test_manual_optimization_stops_early_on_a_logged_value(pl_ns):
    loader = make_loader(make_dataset(48), 8)
    full = _manual_gan(pl_ns, estimator=True).fit(loader, epochs=8, gpu=False).c_loss
    # PyBlaze's rule with patience=1: stop after the first epoch that does not improve.
    worse = [e for e in range(1, 8) if full[e] >= min(full[:e])]
    expected = worse[0] + 1 if worse else 8
    stop = xnn.EarlyStopping(metric="c_loss", patience=1)
    history = _manual_gan(pl_ns, estimator=True).fit(loader, epochs=8, gpu=False, callbacks=[stop])
    assert history.c_loss == pytest.approx(full[:expected], abs=1e-6)
    assert expected < 8, full  # the data make it stop


def test_early_stopping_on_train_loss_without_returned_losses_is_an_error(pl_ns):
    loader = make_loader(make_dataset(48), 8)
    stop = xnn.EarlyStopping(metric="train_loss", patience=1)
    with pytest.raises(ValueError, match=r"'train_loss' among the .*\['c_loss', 'g_loss'\]"):
        _manual_gan(pl_ns, estimator=True).fit(loader, epochs=3, gpu=False, callbacks=[stop])
