"""Keeps Lightning quiet inside fit/evaluate/predict: no banners, tips or known noise warnings."""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")

# Lightning warnings that PyBlaze users never asked about. Matched by message only; every other
# warning (Lightning's real ones included) still shows.
NOISE = (
    r".*does not have many workers which may be a bottleneck.*",
    r".*is smaller than the logging interval.*",
    r".*`training_step` returned `None`.*",
    # The adapter always defines validation_step; fit without val_data is not a mistake.
    r".*You defined a `validation_step` but have no `val_dataloader`.*",
    # Validation and evaluate count every sample once in DDP runs (see engine/_distributed.py).
    r".*Using `DistributedSampler` with the dataloaders\. During `trainer\.validate\(\)`.*",
    # Lightning's own use of a torch API that torch deprecated (not the user's code).
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    # Manual optimization (the adapter's): it asks to edit a training_step the user does not have;
    # the checkpoint holds the weights after the step, as in automatic optimization.
    r".*Using ModelCheckpoint with manual optimization and every_n_train_steps.*",
    # Names the adapter class; a model's own `flops_per_batch` is found (docs/lightning.md).
    r".*you need to define a `flops_per_batch` attribute or property in.*",
)


_lock = threading.Lock()
_depth = 0  # how many quiet() blocks are open, over all threads
_saved_levels: list[int] = []
_installed: list[tuple[Any, ...]] = []  # the entries this module put into warnings.filters


def _filters_changed() -> None:
    # What warnings.filterwarnings does after changing the list: invalidates the per-module
    # registries of warnings already shown.
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()


@contextmanager
def quiet() -> Iterator[None]:
    """Raises Lightning's loggers to WARNING and filters known noise warnings, then restores.

    Safe to use from several threads at once (two ``fit`` calls in parallel): the first block to
    start changes the levels and adds the filters, the last one to end restores the levels and
    removes exactly the filters it added (``warnings.catch_warnings`` is not thread-safe, so it is
    not used). Anything a user changes meanwhile is left alone, except the levels of Lightning's
    loggers, which are restored to what they were when the first block started.
    """
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            loggers = [logging.getLogger(name) for name in _LOGGERS]
            _saved_levels[:] = [logger.level for logger in loggers]
            for logger in loggers:
                logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
            _installed[:] = [
                ("ignore", re.compile(message, re.I), Warning, None, 0) for message in NOISE
            ]
            warnings.filters[:0] = _installed
            _filters_changed()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                loggers = [logging.getLogger(name) for name in _LOGGERS]
                for logger, level in zip(loggers, _saved_levels, strict=True):
                    logger.setLevel(level)
                ours = {id(entry) for entry in _installed}
                warnings.filters[:] = [f for f in warnings.filters if id(f) not in ours]
                _installed.clear()
                _filters_changed()
