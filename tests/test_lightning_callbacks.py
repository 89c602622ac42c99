"""Lightning callbacks that assume they own the loop (issue 11 §2), on both Lightning namespaces:
each behaves as in a plain Lightning run of the same model (compared side by side) or is refused
before any training with a message in the user's terms."""

from __future__ import annotations

import copy
import importlib
import inspect

import pytest
import torch
from conftest import make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn

NAMESPACES = ["pytorch_lightning", "lightning.pytorch"]


@pytest.fixture(params=NAMESPACES)
def pl_ns(request):
    """The Lightning namespace a test runs on: ``pytorch_lightning`` or ``lightning.pytorch``."""
    return importlib.import_module(request.param)


class BNNet(xnn.Estimator, nn.Module):
    """A small classifier with batch norm (SWA then adds its batch-norm pass)."""

    __engine__ = xnn.SupervisedEngine

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
        )

    def forward(self, x):
        return self.layers(x)


def train_loader():
    return make_loader(make_dataset(64), 16)


def val_loader():
    return make_loader(make_dataset(30, seed=2), 10)


def fit(net, callbacks=(), epochs=2, lr=0.1, trainer_kwargs=None, val=True, **kwargs):
    return net.fit(
        train_loader(),
        val_data=val_loader() if val else None,
        epochs=epochs,
        optimizer=optim.SGD(net.parameters(), lr=lr),
        loss=nn.CrossEntropyLoss(),
        callbacks=list(callbacks),
        trainer_kwargs=trainer_kwargs,
        **kwargs,
    )


def plain_lightning(pl, model, callbacks, epochs, lr=0.1):
    """The same model, data and optimizer in a plain Lightning run (automatic optimization)."""

    class Plain(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            self.losses = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.model(x), y)
            self.losses.append(loss.detach().item())
            return loss

        def configure_optimizers(self):
            return optim.SGD(self.model.parameters(), lr=lr)

    module = Plain()
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module, train_loader())
    return module


# StochasticWeightAveraging: side by side with plain Lightning


@pytest.mark.parametrize("model_cls", ["bn", "plain"])
def test_swa_equals_plain_lightning(pl_ns, model_cls):
    torch.manual_seed(0)
    net = BNNet() if model_cls == "bn" else _Plain8()
    reference = copy.deepcopy(net)
    swa = dict(swa_lrs=0.02, swa_epoch_start=2, annealing_epochs=2)
    mine = pl_ns.callbacks.StochasticWeightAveraging(**swa)
    theirs = pl_ns.callbacks.StochasticWeightAveraging(**swa)
    history = fit(net, [mine], epochs=5, val=False)
    module = plain_lightning(pl_ns, reference, [theirs], 5)
    # History holds the requested epochs; the batch-norm pass is no epoch.
    assert len(history) == 5
    # 4 batches x 5 epochs, so the SWA learning rates were applied as in Lightning (its list
    # also holds the losses of its batch-norm pass)
    assert history.micro_train_loss == pytest.approx(module.losses[:20], abs=1e-5)
    assert int(mine.n_averaged) == int(theirs.n_averaged) == 4
    # The model ends with plain Lightning's averaged weights and its recomputed batch-norm
    # statistics. (Plain Lightning's own model ends up to ~0.005 off its average: its batch-norm
    # pass skips zero_grad, then steps the optimizer once on the last training step's gradients.)
    average = dict(theirs._average_model.model.named_parameters())
    buffers = dict(reference.named_buffers())
    for name, value in net.state_dict().items():
        expected = average[name] if name in average else buffers[name]
        assert torch.allclose(value.float(), expected.float(), atol=1e-5), name
    if model_cls == "plain":  # no batch-norm pass: plain Lightning ends on the average too
        for value, expected in zip(
            net.state_dict().values(), reference.state_dict().values(), strict=True
        ):
            assert torch.allclose(value, expected, atol=1e-5)


class _Plain8(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)


def test_swa_ends_with_averaged_weights_and_swa_lr(pl_ns):
    """The weights after fit are the mean of the weights at the start of each SWA epoch (plus the
    end), and the optimizer ran at the SWA learning rate (SWALR steps once per epoch)."""
    torch.manual_seed(0)
    net = _Plain8()
    snapshots, lrs = [], []

    class Watch(xnn.TrainingCallback):
        def before_epoch(self, current, num_iterations):
            snapshots.append(copy.deepcopy(net.state_dict()))

        def after_batch(self, train_loss):
            lrs.append(optimizer.param_groups[0]["lr"])

    optimizer = optim.SGD(net.parameters(), lr=0.1)
    swa = pl_ns.callbacks.StochasticWeightAveraging(
        swa_lrs=0.01, swa_epoch_start=1, annealing_epochs=1
    )
    history = net.fit(
        train_loader(),
        epochs=3,
        optimizer=optimizer,
        loss=nn.CrossEntropyLoss(),
        callbacks=[swa, Watch()],
    )
    assert len(history) == 3
    # epoch 0 at 0.1; SWALR(anneal_epochs=1) reaches swa_lr at once and stays there
    assert lrs[:4] == pytest.approx([0.1] * 4)
    assert lrs[4:] == pytest.approx([0.01] * 8)


# GradientAccumulationScheduler


def test_accumulation_scheduler_refused_for_engines(pl_ns):
    net = _Plain8()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match="gradient_accumulation_steps") as info:
        fit(net, [pl_ns.callbacks.GradientAccumulationScheduler({0: 2})])
    assert "manual optimization" not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def _lit(pl):
    class Lit(xnn.Estimator, pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(8, 3)
            self.own = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.layer(x), y)
            self.own.append(loss.detach().item())
            return loss

        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.1)

    return Lit


def test_accumulation_scheduler_on_lightning_module_keeps_own_losses(pl_ns):
    torch.manual_seed(0)
    lit = _lit(pl_ns)()
    scheduler = pl_ns.callbacks.GradientAccumulationScheduler({0: 1, 1: 3})
    history = lit.fit(train_loader(), epochs=2, callbacks=[scheduler])
    assert len(history) == 2
    assert history.micro_train_loss == pytest.approx(lit.own, rel=1e-6)
    assert history.train_loss[1] == pytest.approx(sum(lit.own[4:]) / 4, rel=1e-6)


def test_accumulation_scheduler_with_steps_refused(pl_ns):
    lit = _lit(pl_ns)()
    with pytest.raises(
        ValueError, match="GradientAccumulationScheduler or gradient_accumulation_steps"
    ):
        lit.fit(
            train_loader(),
            epochs=1,
            gradient_accumulation_steps=2,
            callbacks=[pl_ns.callbacks.GradientAccumulationScheduler({0: 2})],
        )


# progress bars


def test_progress_bar_turns_the_bar_on(pl_ns, capsys):
    bar = pl_ns.callbacks.TQDMProgressBar()
    history = fit(_Plain8(), [bar])
    assert len(history) == 2
    assert bar.trainer.progress_bar_callback is bar
    out = capsys.readouterr().out
    assert "Epoch 1: 100%" in out  # Lightning's bar counts epochs from 0


def test_progress_bar_and_batch_progress_logger_refused(pl_ns):
    with pytest.raises(ValueError, match="one progress display") as info:
        fit(_Plain8(), [pl_ns.callbacks.TQDMProgressBar(), xnn.BatchProgressLogger()])
    assert "BatchProgressLogger" in str(info.value)
    with pytest.raises(ValueError, match="one progress display"):
        fit(_Plain8(), [xnn.EpochProgressLogger()], trainer_kwargs={"enable_progress_bar": True})


# output the user asked for


def test_model_summary_shown_when_passed(pl_ns, capsys, caplog):
    with caplog.at_level("INFO"):
        fit(_Plain8(), [pl_ns.callbacks.ModelSummary()])
    text = caplog.text + capsys.readouterr().err
    assert "Trainable params" in text
    assert "GPU available" not in caplog.text  # the banners stay quiet


def test_nothing_shown_by_default(pl_ns, caplog):
    with caplog.at_level("INFO"):
        fit(_Plain8(), [pl_ns.callbacks.EarlyStopping(monitor="val_loss")])
    assert "Trainable params" not in caplog.text
    assert "Metric val_loss improved" not in caplog.text


def test_verbose_callbacks_and_profiler_shown(pl_ns, caplog, tmp_path):
    callbacks = [
        pl_ns.callbacks.EarlyStopping(monitor="val_loss", verbose=True),
        pl_ns.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val_loss", verbose=True),
    ]
    with caplog.at_level("INFO"):
        fit(_Plain8(), callbacks, trainer_kwargs={"profiler": "simple"})
    assert "Metric val_loss improved" in caplog.text
    assert "saving model to" in caplog.text
    assert "FIT Profiler Report" in caplog.text
    assert "GPU available" not in caplog.text


# monitors without a logger


@pytest.mark.parametrize("name", ["LearningRateMonitor", "DeviceStatsMonitor"])
def test_monitor_without_logger_refused(pl_ns, name):
    with pytest.raises(ValueError, match=r'trainer_kwargs=\{"logger"'):
        fit(_Plain8(), [getattr(pl_ns.callbacks, name)()])


def test_monitor_with_logger_works(pl_ns, tmp_path):
    logger = pl_ns.loggers.CSVLogger(tmp_path)
    history = fit(
        _Plain8(), [pl_ns.callbacks.LearningRateMonitor()], trainer_kwargs={"logger": logger}
    )
    assert len(history) == 2
    text = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "lr-SGD" in text


def test_every_n_train_steps_prints_nothing(pl_ns, tmp_path, recwarn, capsys):
    checkpoint = pl_ns.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2)
    fit(_Plain8(), [checkpoint])
    assert not [w for w in recwarn if "training_step" in str(w.message)]
    assert "training_step" not in capsys.readouterr().err
    assert len(list(tmp_path.glob("*.ckpt"))) == 1  # top-1 of the 4 saves, by step


# every callback class Lightning exports


def _instances(pl, name, tmp_path):
    """One instance of each exported callback class, as a user would write it."""
    callbacks = pl.callbacks
    cls = getattr(callbacks, name)
    if name in ("RichProgressBar", "RichModelSummary"):
        pytest.importorskip("rich")

    class Freeze(cls if name == "BaseFinetuning" else object):  # the base class is abstract
        def freeze_before_training(self, pl_module):
            self.freeze(pl_module.layers[0])

        def finetune_function(self, pl_module, epoch, optimizer):
            if epoch == 1:
                self.unfreeze_and_add_param_group(pl_module.layers[0], optimizer)

    return {
        "BaseFinetuning": Freeze,
        "BackboneFinetuning": lambda: cls(unfreeze_backbone_at_epoch=1),
        "BasePredictionWriter": lambda: cls(),
        "EarlyStopping": lambda: cls(monitor="val_loss"),
        "GradientAccumulationScheduler": lambda: cls({0: 2}),
        "ModelCheckpoint": lambda: cls(dirpath=tmp_path),
        "ModelPruning": lambda: cls("l1_unstructured", amount=0.1),
        "OnExceptionCheckpoint": lambda: cls(dirpath=tmp_path),
        "StochasticWeightAveraging": lambda: cls(swa_lrs=0.05),
        "ThroughputMonitor": lambda: cls(batch_size_fn=lambda batch: batch[0].shape[0]),
    }.get(name, cls)()


REFUSED = {
    "BatchSizeFinder": "batch size of your DataLoader",
    "LearningRateFinder": "LearningRateScheduler",
    "GradientAccumulationScheduler": "gradient_accumulation_steps",
    "LearningRateMonitor": "logger",
    "DeviceStatsMonitor": "logger",
    "BackboneFinetuning": "backbone",
}


def _exported(module_name):
    module = importlib.import_module(module_name + ".callbacks")
    return [n for n in module.__all__ if inspect.isclass(getattr(module, n))]


@pytest.mark.parametrize(
    ("namespace", "name"), [(ns, n) for ns in NAMESPACES for n in _exported(ns)]
)
def test_every_exported_callback(namespace, name, tmp_path):
    pl = importlib.import_module(namespace)
    torch.manual_seed(0)
    net = _Plain8()
    before = copy.deepcopy(net.state_dict())
    callback = _instances(pl, name, tmp_path)
    if name in REFUSED:
        with pytest.raises(ValueError) as info:
            fit(net, [callback])
        message = str(info.value)
        assert REFUSED[name] in message
        assert "EngineModule" not in message and "manual optimization" not in message
        assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    else:
        history = fit(net, [callback])
        assert len(history) == 2
        assert not all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
