"""Lightning interop: Lightning callbacks and loggers, trainer_kwargs, LightningModules,
torchmetrics objects."""

from __future__ import annotations

import copy
import csv
import math

import pytest
import pytorch_lightning as pl
import torch
import torchmetrics
from conftest import make_dataset, make_loader
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch import nn, optim

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X


def fit(net, epochs=3, callbacks=(), trainer_kwargs=None, metrics=None, lr=0.1, **kwargs):
    return net.fit(
        make_loader(make_dataset(64), 16),
        val_data=make_loader(make_dataset(30, seed=2), 10),
        epochs=epochs,
        optimizer=optim.SGD(net.parameters(), lr=lr),
        loss=nn.CrossEntropyLoss(),
        metrics=metrics if metrics is not None else {"accuracy": X.accuracy},
        callbacks=list(callbacks),
        trainer_kwargs=trainer_kwargs,
        **kwargs,
    )


# Lightning callbacks see PyBlaze's metric names


def test_model_checkpoint_monitors_val_loss(net, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val_loss", filename="{epoch}")
    history = fit(net, callbacks=[xnn.BatchProgressLogger(file=tmp_path / "log.txt"), checkpoint])
    best = min(range(3), key=history.val_loss.__getitem__)
    assert checkpoint.best_model_path == str(tmp_path / f"epoch={best}.ckpt")
    assert checkpoint.best_model_score.item() == pytest.approx(history.val_loss[best], abs=1e-6)
    state = torch.load(checkpoint.best_model_path, weights_only=True)
    assert "model.layers.0.weight" in state["state_dict"]


def test_model_checkpoint_monitors_train_loss_with_validation(net, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="train_loss", save_last=True)
    history = fit(net, callbacks=[checkpoint])
    assert checkpoint.best_model_score.item() == pytest.approx(min(history.train_loss), abs=1e-6)
    assert (tmp_path / "last.ckpt").exists()


def test_lightning_early_stopping_on_val_accuracy(net):
    scores = iter([0.5, 0.7, 0.6, 0.6, 0.9])
    stopper = EarlyStopping(monitor="val_score", mode="max", patience=2)
    history = fit(
        net,
        epochs=10,
        callbacks=[stopper, xnn.EarlyStopping(patience=100)],
        metrics={"score": lambda y_pred, y_true: torch.tensor(next(scores))},
    )
    assert history.val_score == pytest.approx([0.5, 0.7, 0.6, 0.6])
    assert stopper.stopped_epoch == 3


def test_mixed_callbacks_in_any_order(net, tmp_path, capsys):
    callbacks = [
        LearningRateMonitor(),
        xnn.BatchProgressLogger(),
        ModelCheckpoint(dirpath=tmp_path),
        xnn.EarlyStopping(patience=5),
    ]
    history = fit(
        net, epochs=2, callbacks=callbacks, trainer_kwargs={"logger": CSVLogger(tmp_path)}
    )
    assert len(history) == 2
    assert capsys.readouterr().out.count("Epoch ") == 2
    assert list(tmp_path.glob("*.ckpt"))


def test_lightning_namespace_callbacks_run_on_lightning_pytorch(net, tmp_path):
    import lightning.pytorch as L

    checkpoint = L.callbacks.ModelCheckpoint(
        dirpath=tmp_path, monitor="val_loss", filename="{epoch}"
    )
    history = fit(net, epochs=2, callbacks=[checkpoint])
    assert len(history) == 2
    assert checkpoint.best_model_score.item() == pytest.approx(min(history.val_loss))


def test_mixing_lightning_namespaces_is_refused_before_training(net, tmp_path):
    import lightning.pytorch as L

    before = copy.deepcopy(net.state_dict())
    mixed = [L.callbacks.ModelCheckpoint(dirpath=tmp_path), EarlyStopping(monitor="val_loss")]
    with pytest.raises(TypeError, match=r"both `pytorch_lightning` \(callbacks\[1\].*`lightning`"):
        fit(net, callbacks=mixed)
    torch.testing.assert_close(net.state_dict(), before)
    with pytest.raises(TypeError, match=r"Received: 42 \(int\)"):
        fit(net, callbacks=[42])


# trainer_kwargs


def test_csv_logger_receives_the_epoch_metrics(net, tmp_path):
    history = fit(net, trainer_kwargs={"logger": CSVLogger(tmp_path, name="run")})
    with open(tmp_path / "run" / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_loss")]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key in ("train_loss", "val_loss", "val_accuracy"):
        logged = [float(r[key]) for r in rows]
        assert logged == pytest.approx(history[key], abs=1e-6), key


def test_tensorboard_logger_writes_events(net, tmp_path):
    fit(net, epochs=1, trainer_kwargs={"logger": TensorBoardLogger(tmp_path, name="tb")})
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_bf16_mixed_precision_on_cpu(net):
    dtypes = set()
    first = net.layers[0]
    first.register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
    history = fit(net, trainer_kwargs={"precision": "bf16-mixed"})
    assert dtypes == {torch.bfloat16}  # every forward ran under bf16 autocast
    assert all(torch.isfinite(torch.tensor(history.micro_train_loss)))
    assert all(p.dtype == torch.float32 for p in net.parameters())
    dtypes.clear()
    fit(net, epochs=1)
    assert dtypes == {torch.float32}  # and only when asked for


def test_gradient_clipping_equals_a_hand_written_loop(net):
    reference = copy.deepcopy(net)
    optimizer = optim.SGD(reference.parameters(), lr=0.5)
    expected = []
    for _ in range(2):
        for x, y in make_loader(make_dataset(64), 16):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(reference(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(reference.parameters(), 0.05)
            optimizer.step()
            expected.append(loss.item())
    history = fit(net, epochs=2, lr=0.5, trainer_kwargs={"gradient_clip_val": 0.05})
    assert history.micro_train_loss == pytest.approx(expected, abs=1e-6)
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_more_trainer_options(net, tmp_path):
    seen = {}

    class Inspect(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["root"] = trainer.default_root_dir
            seen["deterministic"] = torch.are_deterministic_algorithms_enabled()

    history = fit(
        net,
        epochs=2,
        callbacks=[Inspect()],
        trainer_kwargs={
            "limit_train_batches": 3,
            "deterministic": True,
            "default_root_dir": str(tmp_path),
            "check_val_every_n_epoch": 2,
        },
    )
    assert len(history.micro_train_loss) == 6
    assert seen == {"root": str(tmp_path), "deterministic": True}
    assert math.isnan(history.val_loss[0]) and not math.isnan(history.val_loss[1])


@pytest.mark.parametrize(
    ("key", "argument"),
    [
        ("max_epochs", "epochs="),
        ("accelerator", "gpu="),
        ("callbacks", "callbacks="),
        ("accumulate_grad_batches", "gradient_accumulation_steps="),
    ],
)
def test_contradicting_trainer_options_name_the_pyblaze_argument(net, key, argument):
    with pytest.raises(ValueError, match=rf"'{key}'.*`{argument}`"):
        fit(net, trainer_kwargs={key: 2})


def test_devices_only_with_cpu(net, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (1, 2))
    with pytest.raises(ValueError, match=r"devices.*gpu=False.*Received: devices=2 with gpu=0"):
        fit(net, gpu=0, trainer_kwargs={"devices": 2})


# torchmetrics


def test_torchmetrics_objects_as_metrics(net):
    accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=3)
    history = fit(net, metrics={"tm_accuracy": accuracy, "accuracy": X.accuracy})
    assert history.val_tm_accuracy == pytest.approx(history.val_accuracy, abs=1e-7)
    assert accuracy.update_count == 0  # the user's object is left untouched
    evaluation = net.evaluate(
        make_loader(make_dataset(30, seed=2), 10), metrics={"tm": accuracy, "x": X.accuracy}
    )
    assert evaluation.tm == pytest.approx(evaluation.x)


# LightningModules


class Lit(xnn.Estimator, pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("my_train_metric", loss * 2, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def on_train_epoch_end(self):
        self.log("epoch_end_value", torch.tensor(float(self.current_epoch)))

    def configure_optimizers(self):
        return optim.SGD(self.parameters(), lr=0.1)


def test_lightning_module_trains_with_its_own_steps(capsys):
    model = Lit()
    reference = copy.deepcopy(model)
    losses = []

    class Collect(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(outputs["loss"].item())

    pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[Collect()],
    ).fit(reference, make_loader(make_dataset(64), 16))

    history = model.fit(
        make_loader(make_dataset(64), 16),
        val_data=make_loader(make_dataset(30, seed=2), 10),
        epochs=2,
        metrics={"accuracy": X.accuracy},
        callbacks=[xnn.BatchProgressLogger()],
        gpu=False,
    )
    assert isinstance(model.engine, xnn.LightningEngine)
    assert history.micro_train_loss == pytest.approx(losses, abs=1e-6)
    assert history.keys == [
        "epoch_end_value",
        "micro_train_loss",
        "my_train_metric",
        "train_loss",
        "val_accuracy",
        "val_loss",
    ]
    assert history.epoch_end_value == [0.0, 1.0]
    assert history.train_loss[0] == pytest.approx(sum(losses[:4]) / 4)
    assert capsys.readouterr().out.count("Epoch ") == 2

    data = make_dataset(30, seed=2)
    x, y = data.tensors
    with torch.no_grad():
        expected = model(x)
    assert history.val_accuracy[-1] == pytest.approx(X.accuracy(expected, y).item())
    evaluation = model.evaluate(make_loader(data, 10), metrics={"accuracy": X.accuracy})
    assert evaluation.accuracy == pytest.approx(history.val_accuracy[-1])
    torch.testing.assert_close(model.predict(make_loader(data, 10)), expected)


def test_lightning_module_gradient_accumulation_records_undivided_losses():
    model = Lit()
    history = model.fit(make_loader(make_dataset(64), 16), epochs=1, gradient_accumulation_steps=2)
    reference = Lit()
    with torch.no_grad():
        first = nn.functional.cross_entropy(
            reference(make_dataset(64).tensors[0][:16]), make_dataset(64).tensors[1][:16]
        )
    assert history.micro_train_loss[0] == pytest.approx(first.item(), abs=1e-6)


def test_lightning_namespace_modules_train_on_lightning_pytorch():
    import lightning.pytorch as L

    class UnifiedLit(xnn.Estimator, L.LightningModule):
        training_step = Lit.training_step
        validation_step = Lit.validation_step
        configure_optimizers = Lit.configure_optimizers
        forward = Lit.forward

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    unified, classic = UnifiedLit(), Lit()
    loaders = make_loader(make_dataset(64), 16), make_loader(make_dataset(30, seed=2), 10)
    expected = classic.fit(*loaders, epochs=2, gpu=False)
    history = unified.fit(*loaders, epochs=2, gpu=False)
    assert isinstance(unified.engine, xnn.LightningEngine)
    assert history.micro_train_loss == expected.micro_train_loss
    assert history.val_loss == expected.val_loss


class StepHooks(pl.Callback):
    def __init__(self):
        self.backward = self.optimizer = 0

    def on_after_backward(self, trainer, pl_module):
        self.backward += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.optimizer += 1


@pytest.mark.parametrize("with_step_hooks", [False, True])
def test_global_step_counts_optimizer_steps(net, tmp_path, with_step_hooks):
    """Lightning's step counter (checkpoint names, loggers) counts optimizer steps, whether the
    steps run through Lightning's wrappers (a callback with per-step hooks) or directly."""
    hooks = StepHooks()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}-{step}")
    callbacks = [checkpoint, hooks] if with_step_hooks else [checkpoint]
    fit(net, epochs=2, callbacks=callbacks, gradient_accumulation_steps=3)  # 4 batches/epoch
    assert [p.name for p in tmp_path.glob("*.ckpt")] == ["epoch=1-step=4.ckpt"]
    if with_step_hooks:
        assert (hooks.backward, hooks.optimizer) == (8, 4)
