"""PyBlaze 2.x names: MLEEngine, ValueTrainingCallback, eval_-prefixed keyword arguments,
LearningRateScheduler(scheduler, metric=...) and the rejected 2.x ParameterScheduler form.

Parity of MLEEngine with PyBlaze's own is in test_parity_pyblaze.py; these tests need no
PyBlaze and compare against hand-written loops.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim
from torch.utils.data import TensorDataset

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X
from pyblaze_pl.testing import assert_histories_close, assert_models_close

# --- MLEEngine ---------------------------------------------------------------------------------


class MLENet(Net):
    __engine__ = xnn.MLEEngine


def test_mle_engine_defaults_train_as_supervised_engine(net: Net) -> None:
    mle = MLENet()
    mle.load_state_dict(net.state_dict())
    histories = []
    for model in (net, mle):
        torch.manual_seed(0)
        histories.append(
            model.fit(
                make_loader(make_dataset(100), 16, shuffle=True),
                val_data=make_loader(make_dataset(30, seed=2), 10),
                epochs=2,
                optimizer=optim.Adam(model.parameters(), lr=0.01),
                loss=nn.CrossEntropyLoss(),
                metrics={"accuracy": X.accuracy},
                gradient_accumulation_steps=3,
                gpu=False,
            )
        )
    assert isinstance(mle.engine, xnn.MLEEngine)
    assert_histories_close(histories[1], histories[0], rtol=0, atol=0)
    assert_models_close(mle, net, rtol=0, atol=0)
    loader = make_loader(make_dataset(30, seed=2), 10)
    torch.testing.assert_close(mle.predict(loader, gpu=False), net.predict(loader, gpu=False))


class Shift(nn.Module):
    """``(x - shift) * scale`` and a constant second output."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(8))

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        return (x - self.shift) * scale, torch.ones(len(x))


def shift_loss(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (weight * z.pow(2).sum(-1)).mean()


def test_mle_engine_without_targets_against_a_hand_written_loop() -> None:
    data = TensorDataset(make_dataset(64).tensors[0])  # inputs only
    model, reference = Shift(), Shift()
    engine = xnn.MLEEngine(model, expects_data_target=False)
    history = engine.train(
        make_loader(data, 16),
        val_data=make_loader(data, 32),
        epochs=2,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=shift_loss,
        gpu=False,
        scale=2.0,
        eval_scale=3.0,
    )
    optimizer, losses, val_losses = optim.SGD(reference.parameters(), lr=0.1), [], []
    for _ in range(2):
        for (x,) in make_loader(data, 16):
            loss = shift_loss(*reference(x, scale=2.0))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        with torch.no_grad():
            val_losses.append(shift_loss(*reference(data.tensors[0], scale=3.0)).item())
    assert history.micro_train_loss == pytest.approx(losses, abs=1e-6)
    assert history.val_loss == pytest.approx(val_losses, abs=1e-5)
    assert_models_close(model, reference, rtol=0, atol=1e-6)
    z, weight = engine.predict(make_loader(data, 32), gpu=False, scale=0.5)
    torch.testing.assert_close(z, (data.tensors[0] - model.shift.detach()) * 0.5)
    assert weight.shape == (64,)
    loader = make_loader(data, 32)
    evaluation = engine.evaluate(loader, metrics={"loss": shift_loss}, gpu=False, scale=3.0)
    assert evaluation.loss == pytest.approx(val_losses[-1], abs=1e-5)


def test_mle_engine_loss_receives_inputs() -> None:
    # uses_data_input: loss(y_pred, x), e.g. an autoencoder's reconstruction error
    data = TensorDataset(make_dataset(32).tensors[0])
    torch.manual_seed(0)
    model = nn.Linear(8, 8)
    reference = copy.deepcopy(model)
    engine = xnn.MLEEngine(model, expects_data_target=False, uses_data_input=True)
    history = engine.train(
        make_loader(data, 8),
        epochs=1,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.MSELoss(),
        gpu=False,
    )
    optimizer, losses = optim.SGD(reference.parameters(), lr=0.1), []
    for (x,) in make_loader(data, 8):
        loss = nn.functional.mse_loss(reference(x), x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert history.micro_train_loss == pytest.approx(losses, abs=1e-6)
    assert_models_close(model, reference, rtol=0, atol=1e-6)


def test_mle_engine_validation_with_all_loss_inputs(net: Net) -> None:
    # uses_data_input: metrics and val_loss get every loss input, loss(y_pred, y, x), as 2.x
    engine = xnn.MLEEngine(net, uses_data_input=True)
    loader = make_loader(make_dataset(32), 16)
    three = lambda y_pred, y, x: nn.functional.cross_entropy(y_pred, y)  # noqa: E731
    optimizer = optim.SGD(net.parameters(), lr=0.1)
    history = engine.train(
        loader, val_data=loader, epochs=1, optimizer=optimizer, loss=three, gpu=False
    )
    assert len(history.micro_train_loss) == 2  # training works with any number of inputs
    x, y = make_dataset(32).tensors
    with torch.no_grad():
        expected = nn.functional.cross_entropy(net(x), y).item()
    assert history.val_loss == pytest.approx([expected], abs=1e-6)
    evaluation = engine.evaluate(loader, metrics={"loss": three}, gpu=False)
    assert evaluation.loss == pytest.approx(expected, abs=1e-6)


def test_mle_engine_validation_needs_two_loss_inputs_without_inputs(net: Net) -> None:
    engine = xnn.MLEEngine(Triple(net))  # (y_pred, y_pred, y_pred) + y: four loss inputs
    loader = make_loader(make_dataset(32), 16)
    with pytest.raises(ValueError, match=r"Expected two loss inputs .* Received: 4"):
        engine.evaluate(loader, metrics={"accuracy": X.accuracy}, gpu=False)


class Triple(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(x)
        return out, out, out


def test_mle_engine_errors(net: Net) -> None:
    with pytest.raises(TypeError, match=r"Expected expects_data_target to be a bool\. Received: 1"):
        xnn.MLEEngine(net, expects_data_target=1)
    engine = xnn.MLEEngine(net)
    loader = make_loader(make_dataset(32), 16)
    # PyBlaze 2.x's iterations=k: the first k batches
    assert engine.predict(loader, iterations=1, gpu=False).shape == (16, 3)
    evaluation = engine.evaluate(loader, metrics={"accuracy": X.accuracy}, iterations=1)
    x, y = make_dataset(32).tensors
    with torch.no_grad():
        assert evaluation.accuracy == pytest.approx(X.accuracy(net(x[:16]), y[:16]).item())
    with pytest.raises(ValueError, match=r"Expected iterations to be an int >= 1\. Received: 0"):
        engine.predict(loader, iterations=0)
    inputs_only = make_loader(TensorDataset(make_dataset(32).tensors[0]), 16)
    with pytest.raises(ValueError, match=r"batches \(x, y\) .* Received: list of length 1\. "):
        engine.evaluate(inputs_only, metrics={"accuracy": X.accuracy}, gpu=False)
    assert engine.predict(inputs_only, gpu=False).shape == (32, 3)  # predict takes x alone


# --- ValueTrainingCallback ---------------------------------------------------------------------


class Temperature(xnn.ValueTrainingCallback):
    """Halves after every batch; counts reads and hook calls."""

    def __init__(self) -> None:
        self.value, self.reads, self.batches = 1.0, [], 0

    def after_batch(self, train_loss: Any) -> None:
        self.batches += 1
        self.value /= 2

    def read(self) -> float:
        self.reads.append(self.value)
        return self.value


class Scaled(xnn.Estimator, nn.Module):
    __engine__ = xnn.MLEEngine

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return self.linear(x) / temperature


def test_value_training_callback_is_read_on_every_batch_and_registered_once() -> None:
    torch.manual_seed(0)
    model = Scaled()
    reference = copy.deepcopy(model)
    temperature = Temperature()
    loader = make_loader(make_dataset(48), 16)  # 3 batches
    history = model.fit(
        loader,
        val_data=make_loader(make_dataset(20, seed=2), 20),
        epochs=2,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        gpu=False,
        temperature=temperature,
        eval_temperature=temperature,
        callbacks=[temperature],  # also listed: still called once per batch
    )
    assert temperature.batches == 6
    # training reads 1, 1/2, 1/4 | 1/8, ...; validation reads the value after each epoch
    assert temperature.reads == [1, 1 / 2, 1 / 4, 1 / 8, 1 / 8, 1 / 16, 1 / 32, 1 / 64]

    optimizer, losses, value = optim.SGD(reference.parameters(), lr=0.1), [], 1.0
    for _ in range(2):
        for x, y in loader:
            loss = nn.functional.cross_entropy(reference(x, temperature=value), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            value /= 2
    assert history.micro_train_loss == pytest.approx(losses, abs=1e-6)
    assert_models_close(model, reference, rtol=0, atol=1e-6)


def test_value_training_callback_needs_read() -> None:
    class NoRead(xnn.ValueTrainingCallback):
        pass

    with pytest.raises(TypeError, match=r"abstract method.*read"):
        NoRead()
    assert isinstance(Temperature(), xnn.TrainingCallback)


# --- eval_-prefixed keyword arguments ----------------------------------------------------------


class ScaledEngine(xnn.SupervisedEngine):
    """Validation logits are multiplied by ``scale``; training calls eval_batch(data) without
    it, so training must not see the eval_ arguments."""

    def eval_batch(self, data: Any, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = data
        return self.forward(x) * scale, y


def test_eval_prefixed_kwargs_reach_eval_batch_in_validation_only(net: Net) -> None:
    reference = copy.deepcopy(net)
    engine = ScaledEngine(net)
    train, val = make_loader(make_dataset(64), 16), make_loader(make_dataset(30, seed=2), 30)
    history = engine.train(
        train,
        val_data=val,
        epochs=2,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        gpu=False,
        eval_scale=3.0,
    )
    assert "eval_batch" not in engine.__dict__  # the engine is as before afterwards

    optimizer, losses, val_losses = optim.SGD(reference.parameters(), lr=0.1), [], []
    for _ in range(2):
        for x, y in train:
            loss = nn.functional.cross_entropy(reference(x), y)  # scale 1 in training
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        x, y = next(iter(val))
        with torch.no_grad():
            val_losses.append(nn.functional.cross_entropy(reference(x) * 3.0, y).item())
    assert history.micro_train_loss == pytest.approx(losses, abs=1e-6)
    assert history.val_loss == pytest.approx(val_losses, abs=1e-5)
    evaluation = engine.evaluate(val, metrics={"loss": nn.CrossEntropyLoss()}, gpu=False)
    assert evaluation.loss == pytest.approx(
        nn.functional.cross_entropy(reference(x), y).item(), abs=1e-5
    )  # evaluate without eval_ arguments: scale 1


def test_eval_prefixed_kwargs_that_eval_batch_rejects_fail_before_training(net: Net) -> None:
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(
        TypeError,
        match=r"SupervisedEngine\.eval_batch\(data\b.* accepts: eval_-prefixed arguments of train "
        r"are passed to it without the prefix\. Received: eval_temperature=0\.5 \(got an "
        r"unexpected keyword argument 'temperature'\)\.",
    ):
        net.fit(
            make_loader(make_dataset(32), 16),
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            eval_temperature=0.5,
        )
    assert_models_close(net, before, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("option", "replacement"),
    [
        ("eval_train", "call model.evaluate(train_loader, metrics=...) after fit"),
        ("eval_val", "drop the argument (pyblaze_pl records val_loss whenever"),
    ],
)
def test_pyblaze_loop_options_name_their_replacement(net: Net, option: str, replacement: str):
    with pytest.raises(TypeError) as info:
        net.fit(
            make_loader(make_dataset(32), 16),
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            **{option: 2},
        )
    assert str(info.value).startswith(
        f"Expected no PyBlaze option {option}= in SupervisedEngine.train: Lightning's Trainer "
        f"runs the loop. Received: {option}=2. Instead, {replacement}"
    )


# --- LearningRateScheduler / ParameterScheduler -------------------------------------------------


def test_learning_rate_scheduler_with_metric_steps_reduce_on_plateau(net: Net) -> None:
    optimizer = optim.SGD(net.parameters(), lr=0.1)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    history = net.fit(
        make_loader(make_dataset(64), 16),
        val_data=make_loader(make_dataset(30, seed=2), 30),
        epochs=4,
        optimizer=optimizer,
        loss=nn.CrossEntropyLoss(),
        callbacks=[xnn.LearningRateScheduler(plateau, metric="val_loss")],  # PyBlaze 2.x call
        gpu=False,
    )
    reference = optim.lr_scheduler.ReduceLROnPlateau(
        optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), factor=0.5, patience=0
    )
    for loss in history.val_loss:
        reference.step(loss)
    assert optimizer.param_groups[0]["lr"] == reference.optimizer.param_groups[0]["lr"]


def test_learning_rate_scheduler_positional_metric_names_the_keyword() -> None:
    scheduler = optim.lr_scheduler.StepLR(optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), 1)
    with pytest.raises(
        TypeError,
        match=r"Received: 'val_loss' \(str\)\. PyBlaze 2\.x's LearningRateScheduler\(scheduler, "
        r"metric, after_batch\) took the metric second; pass it by keyword: "
        r"LearningRateScheduler\(scheduler, metric='val_loss'\)\.",
    ):
        xnn.LearningRateScheduler(scheduler, "val_loss")


V1_FORM = r"ParameterScheduler\(weight, lambda value, epoch: new_value\)"


def test_parameter_scheduler_rejects_the_pyblaze_2_form() -> None:
    schedule_2x = lambda value, epoch, iteration: value * 0.9  # noqa: E731
    with pytest.raises(TypeError, match=rf"Received: a float\. PyBlaze 2\.x's .*{V1_FORM}"):
        xnn.ParameterScheduler(1.0, schedule_2x)
    with pytest.raises(
        TypeError, match=r"Received: '<lambda>' with parameters \(value, epoch, iteration\)\..*"
    ):
        xnn.ParameterScheduler(torch.tensor(1.0), schedule_2x)
    with pytest.raises(TypeError, match=rf"further arguments: 0\.5, gamma=0\.1\..*{V1_FORM}"):
        xnn.ParameterScheduler(torch.tensor(1.0), lambda v, e: v, False, 0.5, gamma=0.1)
    # the v1 form is accepted, also with a schedule taking optional extra parameters
    xnn.ParameterScheduler(torch.tensor(1.0), lambda value, epoch, factor=0.5: value * factor)


def test_iterations_takes_the_first_batches_on_every_engine():
    model = Net()
    loader = make_loader(make_dataset(16), 4)
    assert model.predict(loader, iterations=3, gpu=False).shape == (12, 3)
    counted = model.evaluate(loader, metrics={"n": lambda p, t: torch.tensor(float(len(t)))},
                             iterations=2, gpu=False)  # fmt: skip
    assert counted["n"] == 8
    with pytest.raises(ValueError, match=r"iterations to be an int >= 1\. Received: 0"):
        model.predict(loader, iterations=0)
    assert isinstance(model.engine, xnn.SupervisedEngine)
