"""ModelSaverCallback, LearningRateScheduler and ParameterScheduler through real ``fit`` runs,
checked against the model's weights at each epoch's end and against hand-written loops."""

from __future__ import annotations

import copy
import sys
import warnings
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

import pyblaze_pl.nn as xnn
from pyblaze_pl.nn._weights import load_weights
from pyblaze_pl.nn.callbacks import base as callbacks_base

BATCHES = 4  # per epoch


class Linear(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class LinearConfig(xnn.Config):
    outputs: int = 1


class ConfigLinear(xnn.Configurable, xnn.Estimator, nn.Module):
    __config__ = LinearConfig
    __engine__ = xnn.SupervisedEngine

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fc = nn.Linear(4, self.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Snapshots(xnn.TrainingCallback):
    """Copies the model's weights at the end of every epoch."""

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self.model, self.states = model, []

    def after_epoch(self, metrics) -> None:
        self.states.append({k: v.clone() for k, v in self.model.state_dict().items()})


class LearningRates(xnn.TrainingCallback):
    """Records the learning rate that each epoch starts with."""

    def __init__(self, optimizer: optim.Optimizer) -> None:
        self.optimizer, self.rates = optimizer, []

    def before_epoch(self, current: int, num_iterations: int) -> None:
        self.rates.append(self.optimizer.param_groups[0]["lr"])


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8 * BATCHES, 4, generator=generator)
    y = torch.randn(8 * BATCHES, 1, generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=8)


def model_pair(model_class=Linear):
    torch.manual_seed(0)
    model = model_class()
    reference = model_class()
    reference.load_state_dict(model.state_dict())
    return model, reference


def hand_loop(model, optimizer, epochs, loss, after_batch=None, after_epoch=None) -> None:
    """The reference training loop: plain PyTorch."""
    for epoch in range(epochs):
        for x, y in loader():
            optimizer.zero_grad()
            loss(model(x), y).backward()
            optimizer.step()
            if after_batch:
                after_batch()
        if after_epoch:
            after_epoch(epoch)


def assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=1e-6)


def fit(model, optimizer, epochs, callbacks, loss=None):
    return model.fit(
        loader(),
        epochs=epochs,
        optimizer=optimizer,
        loss=loss or nn.MSELoss(),
        callbacks=callbacks,
        gpu=False,
    )


@pytest.fixture
def count_items(monkeypatch):
    """Counts ``Tensor.item`` calls made by the schedule callbacks."""
    counts = Counter()
    original = torch.Tensor.item

    def item(self):
        counts[sys._getframe(1).f_globals.get("__name__")] += 1
        return original(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    return lambda: counts["pyblaze_pl.nn.callbacks.schedule"]


# ModelSaverCallback


def test_saver_writes_each_epochs_weights(tmp_path):
    model = Linear()
    snapshots = Snapshots()
    saver = xnn.ModelSaverCallback(tmp_path)
    fit(model, optim.SGD(model.parameters(), lr=0.1), 3, [saver, snapshots])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"model_epoch-{i}.pt" for i in range(3)]
    for epoch, expected in enumerate(snapshots.states):
        saved = load_weights(tmp_path / f"model_epoch-{epoch}.pt")
        assert all(t.device.type == "cpu" for t in saved.values())
        assert_same_weights(dict(saved), expected)
    assert not torch.equal(snapshots.states[0]["fc.weight"], snapshots.states[2]["fc.weight"])
    assert_same_weights(snapshots.states[-1], model.state_dict())
    assert saver.model is None  # released after training


def test_saver_saves_configurable_models_with_their_config(tmp_path):
    model = ConfigLinear(outputs=2)
    snapshots = Snapshots()
    saver = xnn.ModelSaverCallback(tmp_path / "ckpt", file_template="run-{}")
    loss = lambda y_pred, y: F.mse_loss(y_pred.mean(-1, keepdim=True), y)  # noqa: E731
    fit(model, optim.SGD(model.parameters(), lr=0.1), 2, [saver, snapshots], loss)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["run-0.json", "run-0.pt", "run-1.json", "run-1.pt"]
    for epoch, expected in enumerate(snapshots.states):
        loaded = ConfigLinear.load(saver.file(epoch))
        assert loaded.config == LinearConfig(outputs=2)
        assert_same_weights(loaded.state_dict(), expected)


def test_saver_can_serve_several_fits(tmp_path):
    model = Linear()
    saver, snapshots = xnn.ModelSaverCallback(tmp_path), Snapshots()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    fit(model, optimizer, 3, [saver])
    fit(model, optimizer, 2, [saver, snapshots])  # epochs count from 0 again, as in PyBlaze
    assert len(list(tmp_path.iterdir())) == 3
    for epoch, expected in enumerate(snapshots.states):
        assert_same_weights(dict(load_weights(saver.file(epoch).with_suffix(".pt"))), expected)


def test_saver_writes_only_on_global_rank_zero(tmp_path, monkeypatch):
    saver = xnn.ModelSaverCallback(tmp_path)
    monkeypatch.setattr(callbacks_base.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(callbacks_base.dist, "get_rank", lambda: 1)
    saver.before_training(Linear(), 1)
    saver.before_epoch(0, BATCHES)
    saver.after_epoch(xnn.Evaluation({"train_loss": 1.0}))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(callbacks_base.dist, "get_rank", lambda: 0)
    saver.after_epoch(xnn.Evaluation({"train_loss": 1.0}))
    assert [p.name for p in tmp_path.iterdir()] == ["model_epoch-0.pt"]


def test_saver_template_suffix_and_errors(tmp_path):
    assert xnn.ModelSaverCallback(tmp_path, "m-{}.pt").file(3) == tmp_path / "m-3"
    with pytest.raises(ValueError, match=r"one '\{\}' placeholder.*Received: 'model'"):
        xnn.ModelSaverCallback(tmp_path, "model")
    with pytest.raises(ValueError, match=r"Received: 'model-\{epoch\}'"):
        xnn.ModelSaverCallback(tmp_path, "model-{epoch}")
    with pytest.raises(TypeError, match=r"Expected directory to be a str or a path\. Received: 3"):
        xnn.ModelSaverCallback(3)
    with pytest.raises(TypeError, match="Expected file_template to be a str"):
        xnn.ModelSaverCallback(tmp_path, 5)


# LearningRateScheduler


@pytest.mark.parametrize("after_batch", [False, True], ids=["per-epoch", "per-batch"])
def test_learning_rate_scheduler_equals_step_lr_by_hand(after_batch):
    epochs, step_size = 4, (5 if after_batch else 2)
    model, reference = model_pair()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.5)
    rates = LearningRates(optimizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, optimizer, epochs, [xnn.LearningRateScheduler(scheduler, after_batch), rates])
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]

    steps = epochs * BATCHES if after_batch else epochs
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** (steps // step_size))
    per_epoch = BATCHES if after_batch else 1
    expected = [0.1 * 0.5 ** (e * per_epoch // step_size) for e in range(epochs)]
    assert rates.rates == pytest.approx(expected)

    ref_optimizer = optim.SGD(reference.parameters(), lr=0.1)
    ref_scheduler = optim.lr_scheduler.StepLR(ref_optimizer, step_size=step_size, gamma=0.5)
    step = ref_scheduler.step
    hand_loop(
        reference,
        ref_optimizer,
        epochs,
        nn.MSELoss(),
        after_batch=step if after_batch else None,
        after_epoch=None if after_batch else (lambda _: step()),
    )
    assert_same_weights(model.state_dict(), reference.state_dict())


def test_learning_rate_scheduler_with_reduce_on_plateau():
    model = Linear()
    reference = copy.deepcopy(model)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    plateau = dict(mode="max", factor=0.5, patience=0)  # a falling loss never improves: reduce
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, **plateau)
    callback = xnn.LearningRateScheduler(scheduler, metric="train_loss")
    fit(model, optimizer, 3, [callback])

    # The reference steps its scheduler on its own epoch losses, computed by a plain loop.
    ref_optimizer = optim.SGD(reference.parameters(), lr=0.1)
    ref_scheduler = optim.lr_scheduler.ReduceLROnPlateau(ref_optimizer, **plateau)
    for _ in range(3):
        losses = []
        for x, y in loader():
            ref_optimizer.zero_grad()
            value = nn.MSELoss()(reference(x), y)
            value.backward()
            ref_optimizer.step()
            losses.append(value.item())
        ref_scheduler.step(sum(losses) / len(losses))
    assert optimizer.param_groups[0]["lr"] == ref_optimizer.param_groups[0]["lr"] == 0.025
    assert_same_weights(model.state_dict(), reference.state_dict())


def test_learning_rate_scheduler_errors():
    optimizer = optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)
    with pytest.raises(TypeError, match=r"with a step\(\) method.*Received: 0\.1 \(float\)"):
        xnn.LearningRateScheduler(0.1)
    step_lr = optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(TypeError, match=r"Expected after_batch to be a bool\. Received: 'yes'"):
        xnn.LearningRateScheduler(step_lr, after_batch="yes")
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(ValueError, match="Expected metric= with ReduceLROnPlateau"):
        xnn.LearningRateScheduler(plateau)
    with pytest.raises(ValueError, match="Expected after_batch=False with metric='val_loss'"):
        xnn.LearningRateScheduler(plateau, after_batch=True, metric="val_loss")
    callback = xnn.LearningRateScheduler(plateau, metric="val_loss")
    with pytest.raises(ValueError, match=r"metric 'val_loss' among .* Logged: \['train_loss'\]"):
        callback.after_epoch(xnn.Evaluation({"train_loss": 1.0}))


# ParameterScheduler


def test_parameter_scheduler_per_epoch(count_items):
    epochs = 3
    model, reference = model_pair()
    weight, calls = torch.tensor(1.0), []

    def halve(value: float, epoch: int) -> float:
        calls.append((value, epoch))
        return value / 2

    scheduler = xnn.ParameterScheduler(weight, halve)
    loss = lambda y_pred, y: weight * F.mse_loss(y_pred, y)  # noqa: E731
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    fit(model, optimizer, epochs, [scheduler], loss)
    assert calls == [(1.0, 0), (0.5, 1), (0.25, 2)]
    assert weight.item() == 0.125
    assert count_items() == epochs  # one read per epoch, none per batch

    ref_weight = torch.tensor(1.0)
    ref_loss = lambda y_pred, y: ref_weight * F.mse_loss(y_pred, y)  # noqa: E731
    halve_ref = lambda _: ref_weight.mul_(0.5)  # noqa: E731
    hand_loop(
        reference, optim.SGD(reference.parameters(), lr=0.1), epochs, ref_loss, None, halve_ref
    )
    assert_same_weights(model.state_dict(), reference.state_dict())

    calls.clear()
    fit(model, optimizer, 2, [scheduler], loss)  # state resets: epochs count from 0 again
    assert [epoch for _, epoch in calls] == [0, 1]


def test_parameter_scheduler_per_batch(count_items):
    epochs = 2
    model, reference = model_pair()
    weight, steps = nn.Parameter(torch.tensor(1.0, dtype=torch.float64)), []

    def decay(value: float, iteration: int) -> float:
        steps.append(iteration)
        return value * 0.9

    scheduler = xnn.ParameterScheduler(weight, decay, after_batch=True)
    loss = lambda y_pred, y: weight.float().detach() * F.mse_loss(y_pred, y)  # noqa: E731
    fit(model, optim.SGD(model.parameters(), lr=0.1), epochs, [scheduler], loss)
    assert steps == list(range(1, epochs * BATCHES + 1))
    assert weight.item() == pytest.approx(0.9 ** (epochs * BATCHES))
    assert weight.dtype == torch.float64 and weight.requires_grad  # updated in place
    assert count_items() == epochs * BATCHES  # the documented cost of per-batch updates

    ref_weight = torch.tensor(1.0)
    ref_loss = lambda y_pred, y: ref_weight * F.mse_loss(y_pred, y)  # noqa: E731
    decay_ref = lambda: ref_weight.mul_(0.9)  # noqa: E731
    hand_loop(reference, optim.SGD(reference.parameters(), lr=0.1), epochs, ref_loss, decay_ref)
    assert_same_weights(model.state_dict(), reference.state_dict())

    steps.clear()
    fit(model, optim.SGD(model.parameters(), lr=0.1), 1, [scheduler], loss)
    assert steps == list(range(1, BATCHES + 1))  # iterations count from 1 again


def test_parameter_scheduler_errors():
    with pytest.raises(TypeError, match=r"tensor with one element.*Received: a float\."):
        xnn.ParameterScheduler(1.0, lambda v, e: v)
    with pytest.raises(TypeError, match=r"Received: a Tensor of shape \(2,\)\."):
        xnn.ParameterScheduler(torch.ones(2), lambda v, e: v)
    with pytest.raises(TypeError, match=r"Expected schedule to be a function.*Received: 3 \(int\)"):
        xnn.ParameterScheduler(torch.tensor(1.0), 3)
    with pytest.raises(TypeError, match="Expected after_batch to be a bool"):
        xnn.ParameterScheduler(torch.tensor(1.0), lambda v, e: v, after_batch=1)
    scheduler = xnn.ParameterScheduler(torch.tensor(1.0), lambda v, e: "fast")
    scheduler.before_training(Linear(), 1)
    scheduler.before_epoch(0, BATCHES)
    with pytest.raises(TypeError, match=r"schedule to return a number\. Received: 'fast' \(str\)"):
        scheduler.after_epoch(xnn.Evaluation({"train_loss": 1.0}))
