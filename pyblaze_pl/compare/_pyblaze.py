"""PyBlaze 2.3.2 as both comparisons run it: imported, with its ``Dataset`` helpers at hand.

Importing ``pyblaze.nn`` sets ``loader``, ``random_split`` and ``split`` on
``torch.utils.data.Dataset``. :func:`import_pyblaze` puts back what was there and returns
PyBlaze's helpers, to be installed only while PyBlaze code runs. One change makes the two runs
comparable: PyBlaze's ``random_split(seed=None)`` used fresh OS entropy, which no second run can
repeat; here it draws its seed from NumPy's global generator, exactly as pyblaze_pl's does
(docs/migration.md §1, Data), so both runs split alike from the same seed.
"""

from __future__ import annotations

import functools
import importlib
import random
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "HELPERS",
    "INSTALL",
    "current_helpers",
    "import_pyblaze",
    "seed_all",
    "seeded_splits",
    "set_helpers",
]

HELPERS = ("loader", "random_split", "split")
INSTALL = (
    "Install PyBlaze 2.3.2 without its requirements (its pins predate torch 2): "
    "pip install --no-deps pyblaze==2.3.2 (it imports scikit-learn and tensorboard, both in "
    "pyblaze_pl's dev extra)."
)

_SPLITS = [0]  # random_split(seed=None) calls seeded from NumPy's global generator


def import_pyblaze() -> tuple[ModuleType, dict[str, Any]]:
    """Imports ``pyblaze.nn`` and ``pyblaze.nn.functional``; returns ``pyblaze.nn`` and PyBlaze's
    Dataset helpers, leaving ``Dataset`` as it was.

    Raises:
        ModuleNotFoundError: If PyBlaze cannot be imported, with the install line.

    Example:
        >>> pnn, helpers = import_pyblaze()  # doctest: +SKIP
        >>> set_helpers(helpers)  # doctest: +SKIP
    """
    before = current_helpers()
    try:
        module = importlib.import_module("pyblaze.nn")
        importlib.import_module("pyblaze.nn.functional")
        extensions = importlib.import_module("pyblaze.nn.data.extensions")
    except ImportError as e:
        raise ModuleNotFoundError(
            f"PyBlaze could not be imported ({type(e).__name__}: {e}). {INSTALL}", name="pyblaze"
        ) from e
    finally:
        set_helpers(before)
    helpers = {name: getattr(extensions, name) for name in HELPERS}
    helpers["random_split"] = _seeded(helpers["random_split"])
    return module, helpers


def current_helpers() -> dict[str, Any]:
    """The ``Dataset`` helpers installed now (None where there is none), for :func:`set_helpers`
    to put back."""
    return {name: Dataset.__dict__.get(name) for name in HELPERS}


def seed_all(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's global generators, as both runs start."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_helpers(helpers: dict[str, Any]) -> None:
    """Sets ``Dataset``'s helpers; a ``None`` value removes the helper.

    Example:
        >>> set_helpers({"split": None})  # doctest: +SKIP
    """
    for name, value in helpers.items():
        if value is not None:
            setattr(Dataset, name, value)
        elif name in Dataset.__dict__:
            delattr(Dataset, name)


def seeded_splits() -> int:
    """How many of PyBlaze's ``random_split(seed=None)`` calls drew their seed from NumPy."""
    return _SPLITS[0]


def _seeded(random_split: Any) -> Any:
    @functools.wraps(random_split)
    def seeded(self: Dataset, *sizes: float, seed: int | None = None) -> Any:
        if seed is None:  # pyblaze_pl's rule (pyblaze_pl/nn/data.py), so both runs split alike
            seed = int(np.random.randint(0, 2**31, dtype=np.int64))
            _SPLITS[0] += 1
        return random_split(self, *sizes, seed=seed)

    return seeded
