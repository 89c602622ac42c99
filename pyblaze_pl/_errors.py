"""Errors explained in the user's terms: what a value is, and an exception with context added.

Plain Python and torch; used by the checks before a call (``nn/engine/_checks.py``), by the
metrics and by the run's batch errors (``_lightning/batch_errors.py``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def inspecting(model: nn.Module) -> Iterator[None]:
    """Runs the model without gradients, in eval mode, with the random generators restored
    afterwards: training continues exactly as if nothing had run."""
    modes = [(m, m.training) for m in model.modules()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        model.eval()
        try:
            yield
        finally:
            for module, training in modes:
                module.training = training
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def describe(value: object) -> str:
    """Shapes, dtypes and devices of tensors (also inside tuples, lists and dicts).

    Example:
        >>> describe(torch.zeros(4, 3))
        'tensor of shape (4, 3), dtype torch.float32, on cpu'
    """
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, on {value.device}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of [" + "; ".join(describe(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "dict of {" + "; ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def metric_error(error: Exception, name: str, y_pred: Any, y_true: Any, when: str) -> BaseException:
    """``error``, raised by the metric ``name``, with the metric's name and what it received
    (the caller chains the original: ``raise new from error`` unless ``new is error``)."""
    shown = f"metrics[{name!r}]" if name != "loss" else "the loss (as val_loss)"
    received = ""
    if y_pred is not None:
        received = f" It received y_pred: {describe(y_pred)} and y_true: {describe(y_true)}."
    return with_context(
        error,
        f"{shown} failed {when}.{received} Metrics are called as metric(y_pred, y_true) with the "
        f"outputs of eval_batch.",
    )


def with_context(error: Exception, context: str) -> BaseException:
    """An exception of ``error``'s type whose message is the original followed by ``context``
    (the caller chains ``error``). Where the type cannot be rebuilt, ``error`` itself with the
    context as a note (Python 3.11), or a RuntimeError (3.10)."""
    message = f"{error}\n  {context}"
    try:
        new = type(error)(message)
    except Exception:
        new = None
    if new is None or type(new) is not type(error) or str(new) != message:
        if hasattr(error, "add_note"):
            error.add_note(context)
            new = error
        else:
            new = RuntimeError(message)
    new._pyblaze_explained = True  # type: ignore[attr-defined]
    return new
