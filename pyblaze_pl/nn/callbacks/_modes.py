"""The model's train/eval mode while PyBlaze callbacks run, as PyBlaze's own loop had it.

PyBlaze (v1 ``pyblaze/nn/engine/base.py``, ``BaseEngine.train``; 2.x the same) validated by
calling ``evaluate``, which put the model in eval mode and left it there: ``after_epoch``, the
next ``before_epoch`` and ``after_training`` ran in eval mode after an epoch with validation.
``before_predictions`` of the validation ran before ``model.eval()``, in train mode. Lightning
switches modes at other points; :func:`model_mode` sets PyBlaze's mode around one hook and then
restores every submodule's own flag (a frozen BatchNorm kept in eval mode stays so).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def model_mode(model: nn.Module, training: bool | None) -> Iterator[None]:
    """Runs the body with ``model.train(training)``; ``None`` leaves the mode as it is.

    Example:
        >>> model = nn.BatchNorm1d(2)
        >>> with model_mode(model, False):
        ...     model.training
        False
        >>> model.training
        True
    """
    if training is None or not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
