"""Per-batch losses stay on the device: count host syncs made from pyblaze_pl's own code."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
import torch
from conftest import make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X

SYNC_METHODS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__")


@pytest.fixture
def count_syncs(monkeypatch):
    """Counts calls of host-syncing Tensor methods whose caller is a pyblaze_pl module."""
    counts = Counter()

    def wrap(name):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("pyblaze_pl"):
                counts[f"{caller}.{name}"] += 1
            return original(self, *args, **kwargs)

        return counted

    for name in SYNC_METHODS:
        monkeypatch.setattr(torch.Tensor, name, wrap(name))
    return counts


def test_counter_sees_our_calls(count_syncs):
    from pyblaze_pl._lightning.run import to_host

    to_host([torch.ones(2)])
    assert sum(count_syncs.values()) == 1


def test_fit_syncs_at_most_three_times_per_epoch_and_never_per_batch(net, count_syncs, capsys):
    epochs, batches = 2, 100
    history = net.fit(
        make_loader(make_dataset(batches * 4), 4),
        val_data=make_loader(make_dataset(60, seed=3), 8),
        epochs=epochs,
        optimizer=optim.SGD(net.parameters(), lr=0.01),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy, "f1": X.f1_score},
        callbacks=[xnn.BatchProgressLogger(), xnn.EarlyStopping(patience=5)],
        gpu=False,
    )
    assert len(history.micro_train_loss) == epochs * batches
    total = sum(count_syncs.values())
    assert total <= 3 * epochs, dict(count_syncs)
    assert total >= epochs  # one transfer per epoch is expected: the counter works here
