"""PyBlaze 2.x callback names that migrated code still uses."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from pyblaze_pl.nn.callbacks.base import TrainingCallback


class ValueTrainingCallback(TrainingCallback, abc.ABC):
    """A training callback that holds a value which changes over training (PyBlaze 2.x).

    Pass one as a keyword argument of :class:`~pyblaze_pl.nn.MLEEngine`'s ``train`` (``fit``):
    it is registered as a callback, and on every batch the engine passes ``read()`` instead of
    the callback itself to the model (also for ``eval_``-prefixed arguments during validation).

    Example:
        >>> class Temperature(ValueTrainingCallback):
        ...     def __init__(self):
        ...         self.value = 1.0
        ...     def after_epoch(self, metrics):
        ...         self.value *= 0.5
        ...     def read(self):
        ...         return self.value
        >>> model.fit(loader, optimizer=opt, loss=loss, temperature=Temperature())  # doctest: +SKIP
    """

    @abc.abstractmethod
    def read(self) -> Any:
        """Returns the current value."""


def read_values(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with every :class:`ValueTrainingCallback` replaced by its current value.

    Example:
        >>> read_values({"temperature": Temperature(), "hard": True})  # doctest: +SKIP
        {'temperature': 1.0, 'hard': True}
    """
    return {k: v.read() if isinstance(v, ValueTrainingCallback) else v for k, v in kwargs.items()}
