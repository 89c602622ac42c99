"""What an engine's batch methods may ask of the running ``fit``/``evaluate``/``predict`` call.

A run publishes one :class:`BatchContext` while it lasts; the engine reads it (``self.iteration``,
``self.backward(loss)``, ...) and never has state written into it from outside. Outside a run,
an engine sees :data:`IDLE`: iteration 0, plain ``loss.backward()`` and ``optimizer.step()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

import torch


class BatchContext:
    """The current batch's position and the run's way of doing backward and optimizer steps.

    Attributes:
        iteration: The 0-based index of the batch in its epoch (or in ``evaluate``/``predict``).
        num_iterations: The number of batches of the epoch, or ``None`` when the data has no
            length (an iterable-style loader).
        is_last_iteration: Whether this is the epoch's last batch.
        device: The device the model and the batch are on.

    Example:
        >>> context = BatchContext()
        >>> context.iteration, context.num_iterations, context.is_last_iteration
        (0, None, False)
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.iteration = 0
        self.num_iterations: int | None = None
        self.is_last_iteration = False
        self.device = device

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagates ``loss``; a run routes it through its precision plugin and strategy."""
        loss.backward()

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Applies and zeroes the gradients; a run adds clipping, scaling and Ctrl-C safety."""
        optimizer.step()
        optimizer.zero_grad()


IDLE = BatchContext()
_current: ContextVar[BatchContext] = ContextVar("pyblaze_pl_batch_context", default=IDLE)


def current() -> BatchContext:
    """The context of the innermost running call (:data:`IDLE` outside any)."""
    return _current.get()


def publish(context: BatchContext) -> Token:
    """Makes ``context`` the current one in this thread; :func:`withdraw` ends it.

    A run publishes its context in Lightning's ``setup`` hook and withdraws it in ``teardown``, so
    every process of a multi-process run has it.
    """
    return _current.set(context)


def withdraw(token: Token) -> None:
    """Restores the context that was current before :func:`publish` returned ``token``."""
    _current.reset(token)


_wrapper: ContextVar[Any] = ContextVar("pyblaze_pl_compiled_wrapper", default=None)


@contextmanager
def reached_through(wrapper: Any) -> Iterator[None]:
    """The call in the body was reached through ``wrapper``, a ``torch.compile`` wrapper of the
    model (``torch.compile(model).fit(...)``): the run compiles the model's forward as it does.
    """
    token = _wrapper.set(wrapper)
    try:
        yield
    finally:
        _wrapper.reset(token)


def compiled_wrapper() -> Any:
    """The ``torch.compile`` wrapper the current call was reached through, or None."""
    return _wrapper.get()
