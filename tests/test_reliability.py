"""Reliability: bad input, non-finite losses, Ctrl-C, resume after a crash, safe files."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn, optim

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X

SCRIPTS = Path(__file__).parent / "scripts"


def fit(net, epochs=3, callbacks=(), loss=None, **kwargs):
    return net.fit(
        make_loader(make_dataset(64), 16),
        val_data=make_loader(make_dataset(30, seed=2), 10),
        epochs=epochs,
        optimizer=kwargs.pop("optimizer", None) or optim.SGD(net.parameters(), lr=0.1),
        loss=loss or nn.CrossEntropyLoss(),
        callbacks=list(callbacks),
        **kwargs,
    )


# Bad input: errors name expected / received / valid values, before any work starts.


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, r"epochs to be an int >= 1\. Received: 0"),
        ({"epochs": 2.5}, ValueError, r"Received: 2\.5"),
        ({"gpu": "cuda"}, ValueError, r"Expected gpu to be 'auto', True, False.*'cuda'"),
        ({"optimizer": "adam"}, TypeError, r"torch\.optim\.Optimizer.*Received: str"),
        ({"loss": "mse"}, TypeError, r"loss to be a callable.*Received: str"),
        ({"metrics": {"acc": 3}}, TypeError, r"metrics\['acc'\].*Received: 3 \(int\)"),
        ({"metrics": [X.accuracy]}, TypeError, r"metrics to be a dict.*Received: list"),
        ({"gradient_accumulation_steps": 0}, ValueError, r"gradient_accumulation_steps.*0"),
        ({"callbacks": "logger"}, TypeError, r"callbacks to be a list\. Received: str"),
        ({"trainer_kwargs": {"max_epochs": 3}}, ValueError, r"'max_epochs'.*`epochs=`"),
    ],
)
def test_bad_arguments_fail_before_training(net, kwargs, error, message):
    before = copy.deepcopy(net.state_dict())
    arguments = {
        "epochs": 2,
        "optimizer": optim.SGD(net.parameters(), lr=0.1),
        "loss": nn.CrossEntropyLoss(),
        **kwargs,
    }
    with pytest.raises(error, match=message):
        net.fit(make_loader(make_dataset(32), 16), **arguments)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_empty_and_wrong_loaders(net):
    empty = make_loader(torch.utils.data.TensorDataset(torch.zeros(0, 8), torch.zeros(0)), 4)
    with pytest.raises(ValueError, match="train_data to yield at least one batch"):
        net.fit(empty, optimizer=optim.SGD(net.parameters(), 0.1), loss=nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match=r"train_data to be a DataLoader.*Received: int"):
        net.fit(3, optimizer=optim.SGD(net.parameters(), 0.1), loss=nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="val_data to yield at least one batch"):
        net.fit(
            make_loader(make_dataset(8), 4),
            val_data=empty,
            optimizer=optim.SGD(net.parameters(), 0.1),
            loss=nn.CrossEntropyLoss(),
        )
    with pytest.raises(ValueError, match=r"pairs \(x, y\)\. Received: Tensor"):
        net.evaluate(torch.utils.data.DataLoader(torch.zeros(4, 8), batch_size=2))


def test_monitors_that_are_never_logged_fail_after_the_first_epoch(net, tmp_path):
    with pytest.raises(ValueError, match=r"'val_acc'.*Logged: \['train_loss', 'val_loss'\]"):
        fit(net, callbacks=[xnn.EarlyStopping("val_acc")])
    with pytest.raises(Exception, match=r"val_acc.*train_loss.*val_loss"):
        fit(net, callbacks=[ModelCheckpoint(dirpath=tmp_path, monitor="val_acc")])
    with pytest.raises(RuntimeError, match=r"val_acc.*train_loss.*val_loss"):
        fit(net, callbacks=[EarlyStopping(monitor="val_acc")])


# Non-finite training loss


class NaNAt:
    """Cross-entropy that returns NaN at its n-th call."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, y_pred, y_true):
        self.calls += 1
        loss = nn.functional.cross_entropy(y_pred, y_true)
        return loss * float("nan") if self.calls == self.n else loss


def test_non_finite_loss_stops_at_the_end_of_its_epoch(net, capsys):
    # 4 training batches per epoch, then one validation call: call 6 is epoch 2, batch 1.
    history = fit(net, epochs=5, loss=NaNAt(n=6))
    assert len(history) == 2
    micro = history.micro_train_loss
    assert [x != x for x in micro[:5]] == [False] * 4 + [True]  # NaN weights follow
    out = capsys.readouterr().out
    assert "Stopping: the training loss became nan in epoch 2 (batch 1 of 4)" in out


def test_non_finite_check_can_be_turned_off(net):
    history = fit(net, epochs=3, loss=NaNAt(n=6), stop_on_nonfinite=False)
    assert len(history) == 3


# Ctrl-C


class InterruptAt(xnn.TrainingCallback):
    """Simulates Ctrl-C after batch `batch` of epoch `epoch` (0-based), by a real SIGINT."""

    def __init__(self, epoch, batch):
        self.target, self.position, self.trained = (epoch, batch), None, False

    def before_epoch(self, current, num_iterations):
        self.position = (current, -1)

    def after_batch(self, train_loss):
        self.position = (self.position[0], self.position[1] + 1)
        if self.position == self.target:
            os.kill(os.getpid(), signal.SIGINT)

    def after_training(self):
        self.trained = True


def hand_written_steps(model, steps):
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    batches = list(make_loader(make_dataset(64), 16))
    for i in range(steps):
        x, y = batches[i % len(batches)]
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def test_ctrl_c_returns_the_history_so_far(net, capsys):
    reference = hand_written_steps(copy.deepcopy(net), steps=4 + 3)
    handler = signal.getsignal(signal.SIGINT)
    callback = InterruptAt(epoch=1, batch=2)
    history = fit(net, epochs=5, callbacks=[callback])
    assert len(history) == 1
    assert callback.trained  # after_training ran
    assert "Training interrupted (KeyboardInterrupt) in epoch 2" in capsys.readouterr().err
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_ctrl_c_during_an_optimizer_step_waits_for_the_step(net):
    reference = hand_written_steps(copy.deepcopy(net), steps=2)
    optimizer = optim.SGD(net.parameters(), lr=0.1)
    original_step, calls = optimizer.step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the second step
        return original_step(*args, **kwargs)

    optimizer.step = step
    history = fit(net, epochs=5, optimizer=optimizer)
    assert len(history) == 0 and len(calls) == 2
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


# Resume after a crash


def run_script(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "resume_run.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("val_every", [1, 2])
def test_resume_after_a_killed_process_gives_the_same_run(tmp_path, val_every):
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert run_script(full, "--val-every", val_every).returncode == 0
    died = run_script(crashed, "--crash-in-epoch", 3, "--val-every", val_every)
    assert died.returncode == 3, died.stderr
    assert not (crashed / "history.json").exists()
    resumed = run_script(
        crashed, "--resume", crashed / "ckpt" / "last.ckpt", "--val-every", val_every
    )
    assert resumed.returncode == 0, resumed.stderr

    expected = xnn.History.load(full / "history.json")
    history = xnn.History.load(crashed / "history.json")
    assert len(history) == len(expected) >= 4
    assert history.keys == expected.keys
    for key in expected.keys:
        assert history[key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), key
    weights = torch.load(crashed / "weights.pt", weights_only=True)
    for key, value in torch.load(full / "weights.pt", weights_only=True).items():
        torch.testing.assert_close(weights[key], value)


# Files


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoints_never_run_pickled_code(net, tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump({"state_dict": {}, "payload": Payload(marker)}, f)
    with pytest.raises(pickle.UnpicklingError):
        fit(net, epochs=1, ckpt_path=tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_missing_checkpoint_is_named(net, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt"):
        fit(net, epochs=1, ckpt_path=tmp_path / "nope.ckpt")


def test_history_save_is_atomic(tmp_path, monkeypatch):
    import json

    history = xnn.History(1.0, [{"train_loss": 1.0}])
    path = tmp_path / "history.json"
    history.save(path)

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        xnn.History(2.0, [{"train_loss": 0.5}]).save(path)
    assert xnn.History.load(path) == history
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_the_interrupt_guard_changes_neither_results_nor_the_signal_handler(net):
    from test_engine import hand_written_loop

    reference = copy.deepcopy(net)
    handler = signal.getsignal(signal.SIGINT)
    history = fit(net, epochs=2)
    assert signal.getsignal(signal.SIGINT) is handler
    expected, _, _ = hand_written_loop(
        reference,
        make_loader(make_dataset(64), 16),
        make_loader(make_dataset(30, seed=2), 10),
        optim.SGD(reference.parameters(), lr=0.1),
        nn.CrossEntropyLoss(),
        epochs=2,
    )
    assert history.micro_train_loss == pytest.approx(expected, abs=1e-6)
    torch.testing.assert_close(net.state_dict(), reference.state_dict(), rtol=0, atol=1e-6)


def test_learning_rate_schedule_survives_a_resume(tmp_path):
    """The scheduler's state travels in the checkpoint (through the bridge's state_dict)."""
    from torch.optim.lr_scheduler import MultiStepLR

    def run(epochs, ckpt_path=None):
        torch.manual_seed(0)
        model = Net()
        optimizer = optim.SGD(model.parameters(), lr=1.0)
        scheduler = MultiStepLR(optimizer, milestones=[3], gamma=0.1)
        model.fit(
            make_loader(make_dataset(32), 16),
            epochs=epochs,
            optimizer=optimizer,
            loss=nn.CrossEntropyLoss(),
            callbacks=[
                xnn.LearningRateScheduler(scheduler),
                ModelCheckpoint(dirpath=tmp_path, save_last=True),
            ],
            ckpt_path=ckpt_path,
        )
        return optimizer.param_groups[0]["lr"]

    assert run(2) == 1.0
    # A fresh scheduler would restart counting at epoch 0 and not reach its milestone.
    assert run(4, ckpt_path=tmp_path / "last.ckpt") == pytest.approx(0.1)


def test_unknown_keyword_arguments_fail_before_training(net):
    with pytest.raises(
        TypeError, match=r"fit \(SupervisedEngine\.train\) accepts.*Received: lr=0\.1"
    ):
        fit(net, lr=0.1)
