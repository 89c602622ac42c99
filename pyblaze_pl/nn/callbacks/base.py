"""PyBlaze's callback interfaces. Engines call them through a Lightning callback (the bridge)."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import nn

from pyblaze_pl.nn.results import Evaluation


def is_global_zero() -> bool:
    """Whether this process prints and writes files: always, except on the ranks > 0 of a
    multi-process (DDP) run."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class CallbackException(Exception):
    """Raised by a callback in ``before_epoch`` or ``after_epoch`` to end training cleanly.

    ``fit`` then returns the History recorded so far and prints the exception's message (as
    PyBlaze v1; ``verbose=False`` keeps it quiet, PyBlaze 2.x's default).

    Args:
        message: Why training stops.
        verbose: Whether the message is printed when training has ended.

    Example:
        >>> class StopAtTwo(TrainingCallback):
        ...     def after_epoch(self, metrics):
        ...         if metrics["train_loss"] < 2:
        ...             raise CallbackException("Loss below 2.")
    """

    def __init__(self, message: str = "", verbose: bool = True) -> None:
        super().__init__(message)
        self.verbose = verbose


class TrainingCallback:
    """Hooks that an engine calls while training. Override the ones you need.

    A callback resets its state in ``before_training``, so one instance can serve several ``fit``
    calls.

    Attributes:
        after_batch_receives: What an override of :meth:`after_batch` receives: ``"float"`` (the
            default, as PyBlaze: one host synchronisation per batch on a GPU) or ``"tensor"``
            (the detached 0-dim loss tensor, no synchronisation; the library's own callbacks).
            Callbacks that do not override ``after_batch`` cost nothing per batch.
    """

    after_batch_receives: str = "float"

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        """Called once before the first epoch (the model is already on its device)."""

    def before_epoch(self, current: int, num_iterations: int) -> None:
        """Called before epoch ``current`` (0-based) with its number of batches. May raise
        :class:`CallbackException` to stop training."""

    def after_batch(self, train_loss: Any) -> None:
        """Called after every training batch with its loss: a float as in PyBlaze, or the
        detached 0-dim tensor with ``after_batch_receives = "tensor"``."""

    def after_epoch(self, metrics: Evaluation) -> None:
        """Called after each epoch (and its validation) with the epoch's metrics. May raise
        :class:`CallbackException` to stop training."""

    def after_training(self) -> None:
        """Called once when training ends, also when it was stopped early or interrupted."""


class PredictionCallback:
    """Hooks that an engine calls while it evaluates or predicts (also during validation)."""

    def before_predictions(self, model: nn.Module, num_iterations: int) -> None:
        """Called before the first batch with the number of batches."""

    def after_batch(self, *args: Any) -> None:
        """Called after every batch."""

    def after_predictions(self) -> None:
        """Called after the last batch."""
