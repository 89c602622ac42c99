"""The lean runner and the Trainer give the same numbers, bit for bit on the CPU."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X


def run(runner: str, engine: str = "supervised"):
    torch.manual_seed(0)
    net = Net(dropout=0.3)  # dropout and shuffling draw from the global RNG
    history = net.fit(
        make_loader(make_dataset(100), 16, shuffle=True),
        val_data=make_loader(make_dataset(40, seed=2), 16),
        epochs=3,
        optimizer=optim.Adam(net.parameters(), lr=0.01),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy, "f1": X.f1_score},
        callbacks=[xnn.EarlyStopping(patience=5), xnn.BatchProgressLogger(file="/dev/null")],
        gradient_accumulation_steps=2,
        runner=runner,
        gpu=False,
    )
    data = make_loader(make_dataset(30, seed=5), 7)
    evaluation = net.evaluate(data, metrics={"accuracy": X.accuracy}, runner=runner, gpu=False)
    predictions = net.predict(data, runner=runner, gpu=False)
    return history, net.state_dict(), evaluation, predictions


def test_both_runners_give_identical_results():
    trainer, lean = run("trainer"), run("fabric")
    assert trainer[0].to_dict() == lean[0].to_dict()
    for key, value in trainer[1].items():
        assert torch.equal(value, lean[1][key]), key
    assert trainer[2] == lean[2]
    assert torch.equal(trainer[3], lean[3])


def test_auto_uses_the_lean_runner_only_without_trainer_features(net, monkeypatch):
    from pytorch_lightning.callbacks import ModelCheckpoint

    from pyblaze_pl._lightning import run as run_module

    used = []
    original = run_module.Run._new_trainer

    def spy(self, **options):
        trainer = original(self, **options)
        used.append(type(trainer).__name__)
        return trainer

    monkeypatch.setattr(run_module.Run, "_new_trainer", spy)
    kwargs = {"optimizer": optim.SGD(net.parameters(), lr=0.1), "loss": nn.CrossEntropyLoss()}
    loader = make_loader(make_dataset(16), 8)
    net.fit(loader, epochs=1, gpu=False, **kwargs)
    net.fit(loader, epochs=1, gpu=False, trainer_kwargs={"limit_train_batches": 1}, **kwargs)
    net.fit(loader, epochs=1, gpu=False, callbacks=[ModelCheckpoint(dirpath=None)], **kwargs)
    net.fit(loader, epochs=1, gpu=False, runner="trainer", **kwargs)
    assert used == ["FabricLoop", "Trainer", "Trainer", "Trainer"]


def test_lean_runner_refuses_calls_that_need_the_trainer(net):
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(
        ValueError, match=r"Fabric runner.*Received: trainer_kwargs other than precision\. Use"
    ):
        net.fit(
            make_loader(make_dataset(16), 8),
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            trainer_kwargs={"limit_train_batches": 1},
            runner="fabric",
            gpu=False,
        )
    with pytest.raises(
        ValueError, match=r"runner to be one of \('auto', 'trainer', 'fabric', 'lean'\)"
    ):
        net.predict(make_loader(make_dataset(16), 8), runner="fast")
    torch.testing.assert_close(net.state_dict(), before)
