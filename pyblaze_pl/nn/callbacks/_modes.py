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
from typing import Any

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
    with kept_modes(model):
        model.train(training)
        yield


@contextmanager
def kept_modes(model: nn.Module) -> Iterator[None]:
    """Runs the body, then gives every submodule of ``model`` its training flag back, however the
    body ends (an exception, Ctrl-C).

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> with kept_modes(model):
        ...     _ = model.eval()
        ...     model[1].training
        False
        >>> model[1].training
        True
    """
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


@contextmanager
def hook_mode(model: nn.Module, training: bool | None) -> Iterator[None]:
    """Runs a PyBlaze hook with ``model.train(training)`` (``None``: as it is); afterwards every
    submodule gets its flag back, and then the ``train()``/``eval()`` calls the hook itself made
    are applied again: a callback that freezes a submodule keeps it frozen.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> with hook_mode(model, False):
        ...     _ = model[1].eval()  # the hook freezes the dropout
        >>> model.training, model[1].training
        (True, False)
    """
    if not isinstance(model, nn.Module):
        yield
        return
    calls: list[tuple[nn.Module, bool]] = []
    modules = list(model.modules())

    def recording(module: nn.Module) -> Any:
        def train(mode: bool = True) -> nn.Module:
            calls.append((module, mode))
            return type(module).train(module, mode)

        return train

    with kept_modes(model):
        if training is not None:
            model.train(training)
        for module in modules:  # the hook's own calls, on any submodule, are recorded
            module.__dict__["train"] = recording(module)
        try:
            yield
        finally:
            for module in modules:
                module.__dict__.pop("train", None)
    for module, mode in calls:
        module.train(mode)
