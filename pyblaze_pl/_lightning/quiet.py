"""Keeps Lightning quiet inside fit/evaluate/predict: no banners, tips or known noise warnings."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def quiet() -> Iterator[None]:
    """Raises Lightning's loggers to WARNING and filters known noise warnings, then restores."""
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        with warnings.catch_warnings():
            for message in NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
