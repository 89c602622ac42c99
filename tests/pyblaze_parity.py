"""PyBlaze 2.3.2 for the parity tests: ``pnn`` (``pyblaze.nn``), ``PF`` (its functional module)
and its History under our names. Import PyBlaze only from here."""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest
from torch.utils.data import Dataset


def _import_pyblaze() -> Any:
    """Imports ``pyblaze.nn`` and undoes its one global change.

    Importing ``pyblaze.nn`` sets ``Dataset.loader``, ``Dataset.random_split`` and
    ``Dataset.split`` on ``torch.utils.data.Dataset`` (``pyblaze/nn/data/extensions.py``),
    replacing pyblaze_pl's helpers for every test in the session. They are put back as they were.
    No other patch is needed: PyBlaze 2.3.2 runs unchanged on torch 2.x.
    """
    names = ("loader", "random_split", "split")
    before = {name: Dataset.__dict__.get(name) for name in names}
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        # CI must run the parity tests: a missing PyBlaze is an error there, never a skip.
        module = importlib.import_module("pyblaze.nn")
    else:
        module = pytest.importorskip(
            "pyblaze.nn",
            reason="PyBlaze is not importable: `make test` installs it test-only with "
            "`pip install --no-deps pyblaze==2.3.2` (it also needs scikit-learn and tensorboard).",
        )
    for name, value in before.items():
        if value is None:
            delattr(Dataset, name)
        else:
            setattr(Dataset, name, value)
    return module


pnn = _import_pyblaze()
PF = importlib.import_module("pyblaze.nn.functional")  # after pnn: its import undoes the patch


def pyblaze_history(history: Any) -> dict[str, list[float]]:
    """A PyBlaze 2.x History under pyblaze_pl's names (``batch_loss`` -> ``micro_train_loss``,
    ``loss`` -> ``train_loss``; ``val_*`` as they are)."""
    renamed = {"batch_loss": "micro_train_loss", "loss": "train_loss"}
    return {renamed.get(k, k): list(getattr(history, k)) for k in history.keys}
