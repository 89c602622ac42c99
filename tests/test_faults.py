"""Faults in a call: nothing trained before a bad validation batch is found, the History kept
after any exception, evaluate and predict errors explained (both runners)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

import pyblaze_pl.nn as xnn

RUNNERS = ["trainer", "fabric"]


def fit(net, runner, **kwargs):
    kwargs.setdefault("optimizer", optim.SGD(net.parameters(), lr=0.1))
    kwargs.setdefault("loss", nn.CrossEntropyLoss())
    kwargs.setdefault("epochs", 2)
    return net.fit(make_loader(make_dataset(32), 8), gpu=False, runner=runner, **kwargs)


def wrong_width(n: int = 16) -> DataLoader:
    """Validation data with 5 features for a model that takes 8."""
    return DataLoader(TensorDataset(torch.randn(n, 5), torch.zeros(n, dtype=torch.long)), 8)


@pytest.mark.parametrize("runner", RUNNERS)
def test_bad_validation_data_is_refused_before_any_training(runner):
    torch.manual_seed(0)
    net = Net()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(RuntimeError, match=r"val_data cannot go through the model") as info:
        fit(net, runner, val_data=wrong_width())
    message = str(info.value)
    assert "nothing has been trained" in message
    assert "tensor of shape (8, 5)" in message  # the first batch, described
    assert "likely fix: a linear layer takes 8 features per sample but received 5." in message
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value), key
    assert len(info.value.history) == 0


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_validation_check_changes_no_number(runner, monkeypatch):
    """Dropout and a validation set that draws random numbers: the run with the check trains
    exactly as the run without it (the check restores every generator)."""
    from pyblaze_pl._lightning import hooks

    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, index):
            return torch.randn(8), index % 3

    results = []
    for check in (True, False):
        if not check:
            monkeypatch.setattr(hooks, "check_validation_batch", lambda run: None)
        torch.manual_seed(0)
        net = Net(dropout=0.5)
        history = fit(net, runner, val_data=DataLoader(Noisy(), 8))
        results.append((history.to_dict(), net.state_dict()))
    assert results[0][0] == results[1][0]
    for key, value in results[0][1].items():
        assert torch.equal(results[1][1][key], value), key


class FailsInEpoch(xnn.TrainingCallback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_epoch(self, metrics):
        if len(metrics) and self.epoch == 0:
            raise OSError("No space left on device")
        self.epoch -= 1


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_history_of_completed_epochs_survives_an_exception(runner):
    torch.manual_seed(0)
    net = Net()
    with pytest.raises(OSError, match="No space left") as info:
        fit(net, runner, epochs=5, callbacks=[FailsInEpoch(2)])
    history = info.value.history
    assert len(history) == 3  # the epoch whose after_epoch failed was recorded
    assert net.engine.history is history  # also on the engine, as Keras keeps model.history
    assert history.duration > 0


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("call", ["evaluate", "predict"])
def test_evaluate_and_predict_errors_name_the_batch_and_shapes(runner, call):
    torch.manual_seed(0)
    net = Net()
    data = DataLoader(TensorDataset(torch.randn(20, 5), torch.zeros(20, dtype=torch.long)), 8)
    with pytest.raises(RuntimeError) as info:
        getattr(net, call)(data, runner=runner, gpu=False)
    message = str(info.value)
    method = "eval_batch" if call == "evaluate" else "predict_batch"
    assert f"SupervisedEngine.{method} failed on batch 0 of {call}." in message
    assert "tensor of shape (8, 5)" in message
    assert "mat1 and mat2 shapes cannot be multiplied" in message  # the original stays
    assert "likely fix: a linear layer takes 8 features per sample but received 5." in message
    assert isinstance(info.value.__cause__, RuntimeError)


class NaNAt:
    """Cross-entropy that returns NaN at its n-th call."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self, y_pred, y_true):
        self.calls += 1
        loss = nn.functional.cross_entropy(y_pred, y_true)
        return loss * float("nan") if self.calls == self.n else loss


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_nan_stop_says_the_weights_are_now_non_finite(runner, capsys):
    torch.manual_seed(0)
    net = Net()
    history = fit(net, runner, epochs=3, loss=NaNAt(2))
    assert len(history) == 1
    out = capsys.readouterr().out
    assert "The model's weights are now non-finite (4 of 4 parameter tensors hold NaN" in out
    assert "xnn.EarlyStopping(restore_best=True)" in out
    assert "ModelCheckpoint(monitor='train_loss')" in out and "clip gradients" in out


class NaNInTraining(NaNAt):
    """NaN at the n-th training call (validation calls, without gradients, are not counted)."""

    def __call__(self, y_pred, y_true):
        if not y_pred.requires_grad:
            return nn.functional.cross_entropy(y_pred, y_true)
        return super().__call__(y_pred, y_true)


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_nan_stop_says_when_restore_best_loaded_finite_weights_back(runner, capsys):
    torch.manual_seed(0)
    reference = Net()
    fit(reference, runner, epochs=1)
    torch.manual_seed(0)
    net = Net()
    stop = xnn.EarlyStopping(metric="train_loss", patience=5, restore_best=True)
    history = fit(net, runner, epochs=3, loss=NaNInTraining(6), callbacks=[stop])
    assert len(history) == 2 and history.restored_epoch == 1
    for name, value in net.state_dict().items():  # epoch 1's weights, finite
        torch.testing.assert_close(value, reference.state_dict()[name], rtol=0, atol=0)
    out = capsys.readouterr().out
    assert "The weights became non-finite; xnn.EarlyStopping(restore_best=True) loaded" in out
    assert "now non-finite" not in out and "train with xnn.EarlyStopping" not in out


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_nan_stop_says_why_restore_best_loaded_nothing(runner, capsys):
    torch.manual_seed(0)
    net = Net()
    stop = xnn.EarlyStopping(metric="val_loss", patience=5, restore_best=True)
    val = make_loader(make_dataset(16), 8)
    fit(net, runner, epochs=4, eval_every=2, val_data=val, loss=NaNInTraining(6), callbacks=[stop])
    out = capsys.readouterr().out  # epoch 2 is not validated: epoch 1 stays the best
    assert "The model's weights are now non-finite" in out
    assert "restore_best=True) loaded nothing back" in out
    assert "train with xnn.EarlyStopping" not in out  # the run already uses it
    assert "ModelCheckpoint(monitor='train_loss')" in out


def test_a_checkpoint_of_another_optimizer_is_refused_before_loading(tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    torch.manual_seed(0)
    net = Net()
    fit(net, "trainer", epochs=1, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    other = Net()
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(
        ValueError,
        match=r"last.ckpt.*another class.*momentum.*(SGD).*Adam has.*betas.*nothing was loaded",
    ):
        fit(other, "trainer", epochs=2, optimizer=optim.Adam(other.parameters()),
            ckpt_path=tmp_path / "last.ckpt")  # fmt: skip
    for key, value in before.items():
        assert torch.equal(other.state_dict()[key], value), key
    # the same optimizer class resumes
    history = fit(other, "trainer", epochs=2, optimizer=optim.SGD(other.parameters(), lr=0.1),
                  ckpt_path=tmp_path / "last.ckpt")  # fmt: skip
    assert len(history) == 2
