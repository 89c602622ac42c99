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

import torch

from pyblaze_pl._lightning import check_datamodule, check_single_loader, is_datamodule


def check_loader(data: object, name: str) -> None:
    """Raises unless ``data`` is an iterable of batches (or a LightningDataModule); an empty sized
    loader is refused."""
    if is_datamodule(data):
        return
    if isinstance(data, torch.Tensor):
        shape = tuple(data.shape)
        raise TypeError(
            f"Expected {name} to be a DataLoader (or another iterable of batches). Received: a "
            f"tensor of shape {shape}, whose rows would be taken as batches. Pass batches: "
            f"DataLoader(TensorDataset(x, y), batch_size=32). (predict takes a tensor of inputs.)"
        )
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, Iterable):
        raise TypeError(
            f"Expected {name} to be a DataLoader (or another iterable of batches). Received: "
            f"a data set ({type(data).__name__}), which holds samples, not batches. Pass "
            f"dataset.loader(batch_size=32) or DataLoader(dataset, batch_size=32)."
        )
    if not isinstance(data, Iterable):
        raise TypeError(
            f"Expected {name} to be a DataLoader (or another iterable of batches). "
            f"Received: {type(data).__name__}."
        )
    try:
        size = len(data)  # type: ignore[arg-type]
    except TypeError:
        return  # iterable-style data sets have no length
    if size == 0:
        raise ValueError(f"Expected {name} to yield at least one batch. Received: an empty loader.")


#: The rows per batch when ``predict`` is given a tensor.
PREDICT_BATCH_SIZE = 32


def tensor_batches(data: torch.Tensor) -> list[torch.Tensor]:
    """A tensor of inputs as batches of :data:`PREDICT_BATCH_SIZE` rows (``predict``).

    Example:
        >>> [tuple(b.shape) for b in tensor_batches(torch.zeros(40, 4))]
        [(32, 4), (8, 4)]
    """
    if data.dim() < 2:
        raise ValueError(
            f"Expected data to be a tensor of samples with at least 2 dimensions (samples, "
            f"features...). Received: a tensor of shape {tuple(data.shape)}. For one sample, "
            f"pass x.unsqueeze(0); for samples of one value each, x.unsqueeze(1)."
        )
    return list(data.split(PREDICT_BATCH_SIZE))


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Expected {name} to be an int >= 1. Received: {value!r}.")


def check_fit_arguments(train_data: object, val_data: object, epochs: object) -> None:
    check_loader(train_data, "train_data")
    if val_data is not None:
        check_loader(val_data, "val_data")
        check_single_loader(val_data, "val_data")
    check_datamodule(train_data, "train_dataloader", "fit")
    check_positive_int("epochs", epochs)


class FirstBatches:
    """The first ``count`` batches of ``data`` (PyBlaze's ``iterations=``); it has a length, so
    an endless loader (noise) can be predicted or evaluated.

    Example:
        >>> len(FirstBatches(itertools.count(), 3)), list(FirstBatches(itertools.count(), 3))
        (3, [0, 1, 2])
    """

    def __init__(self, data: Iterable, count: int, name: str = "iterations") -> None:
        check_positive_int(name, count)
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
        check_positive_int("eval_every", size)
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
        check_positive_int("eval_every", eval_every)
        del kwargs["eval_every"]
        if epochs // eval_every < 1:
            raise ValueError(
                f"Expected epochs >= eval_every with an endless training loader (PyBlaze "
                f"trains epochs // eval_every epochs of eval_every batches). Received: "
                f"epochs={epochs}, eval_every={eval_every}."
            )
        train_data, epochs = EpochChunks(train_data, eval_every), epochs // eval_every
    return train_data, val_data, epochs
