"""PyBlaze 2.x's loop options that an engine can apply to the data it hands to the run.

- ``iterations=k`` of ``evaluate``/``predict`` and ``val_iterations=k`` of ``train``: the first
  ``k`` batches (:class:`FirstBatches`), e.g. of an endless noise loader.
- ``eval_every=n`` with an endless (unsized) training loader: epochs of ``n`` batches drawn from
  one iterator that lasts the whole run (:class:`EpochChunks`), ``epochs // n`` of them, with
  validation after each (PyBlaze 2.3.2, ``pyblaze/nn/engine/base.py``, ``Engine.train``).
- ``eval_every=n`` with a sized loader is the run's validation schedule
  (``pyblaze_pl._lightning.epoch.validates_after``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any


def _check_count(name: str, count: object) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"Expected {name} to be an int >= 1. Received: {count!r}.")


class FirstBatches:
    """The first ``count`` batches of ``data`` (PyBlaze's ``iterations=``); it has a length, so
    an endless loader (noise) can be predicted or evaluated.

    Example:
        >>> len(FirstBatches(itertools.count(), 3)), list(FirstBatches(itertools.count(), 3))
        (3, [0, 1, 2])
    """

    def __init__(self, data: Iterable, count: int, name: str = "iterations") -> None:
        _check_count(name, count)
        self.data = data
        self.count = count

    def __iter__(self) -> Iterator[Any]:
        # A generator: `data` is iterated only when the first batch is asked for (Lightning calls
        # iter() once more on iterables that are not DataLoaders, to check them; starting a
        # DataLoader then would draw its seed from the global generator once too often).
        yield from itertools.islice(self.data, self.count)

    def __len__(self) -> int:
        try:
            return min(len(self.data), self.count)  # type: ignore[arg-type]
        except TypeError:
            return self.count


def limit_batches(data: Iterable, iterations: int | None) -> Iterable:
    """``data``, or its first ``iterations`` batches (``None``: all, as PyBlaze)."""
    return data if iterations is None else FirstBatches(data, iterations)


class EpochChunks:
    """Epochs of ``size`` batches from one iterator of ``data`` that lasts the whole run
    (PyBlaze 2.x's ``eval_every`` for an endless training loader). The iterator starts when the
    first batch is asked for.

    Example:
        >>> chunks = EpochChunks(itertools.count(), 2)
        >>> len(chunks), list(chunks), list(chunks)
        (2, [0, 1], [2, 3])
    """

    def __init__(self, data: Iterable, size: int) -> None:
        _check_count("eval_every", size)
        self.data = data
        self.size = size
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        if self._iterator is None:
            self._iterator = iter(self.data)
        yield from itertools.islice(self._iterator, self.size)

    def __len__(self) -> int:
        return self.size


def is_sized(data: object) -> bool:
    """Whether ``data`` has a length (an endless loader has none)."""
    try:
        len(data)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def apply_loop_options(
    train_data: Iterable, val_data: Iterable | None, epochs: int, kwargs: dict[str, Any]
) -> tuple[Iterable, Iterable | None, int]:
    """Applies (and removes from ``kwargs``) the PyBlaze 2.x options of ``train`` that the data
    can carry: ``val_iterations=k`` (the first ``k`` validation batches, each epoch) and
    ``eval_every=n`` with an endless training loader (``epochs // n`` epochs of ``n`` batches).
    ``eval_every`` with a sized loader stays in ``kwargs`` (the run's validation schedule).

    Example:
        >>> kwargs = {"eval_every": 10}
        >>> data, _, epochs = apply_loop_options(itertools.count(), None, 100, kwargs)
        >>> len(data), epochs, kwargs
        (10, 10, {})
    """
    val_iterations = kwargs.pop("val_iterations", None)
    if val_iterations is not None and val_data is not None:
        val_data = FirstBatches(val_data, val_iterations, "val_iterations")
    eval_every = kwargs.get("eval_every")
    if eval_every is not None and not is_sized(train_data):
        _check_count("eval_every", eval_every)
        del kwargs["eval_every"]
        if epochs // eval_every < 1:
            raise ValueError(
                f"Expected epochs >= eval_every with an endless training loader (PyBlaze "
                f"trains epochs // eval_every epochs of eval_every batches). Received: "
                f"epochs={epochs}, eval_every={eval_every}."
            )
        train_data, epochs = EpochChunks(train_data, eval_every), epochs // eval_every
    return train_data, val_data, epochs
