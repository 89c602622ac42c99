"""Dataset helpers that PyBlaze adds to every :class:`torch.utils.data.Dataset`.

Importing this module (which ``import pyblaze_pl.nn`` does) runs :func:`install`, which attaches
:func:`random_split` and :func:`loader` as methods of :class:`torch.utils.data.Dataset`, so every
map-style dataset, including torchvision's, gains them::

    import pyblaze_pl.nn  # noqa: F401  (installs the helpers)

    train, val = dataset.random_split(0.8, 0.2)
    train_loader = train.loader(batch_size=256, shuffle=True)

Installing is idempotent: importing again or calling :func:`install` again changes nothing.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

__all__ = ["install", "loader", "random_split"]


def random_split(self: Dataset, *fractions: float, seed: int | None = None) -> list[Subset]:
    """Splits the dataset randomly into subsets holding the given fractions of its items.

    The algorithm is PyBlaze v1's, so a given seed selects the same items as PyBlaze did: the
    indices are ``np.random.RandomState(seed).permutation(len(self))``, every split but the last
    takes the next ``int(np.round(fraction * len(self)))`` of them and the last split takes the
    rest.

    Unlike PyBlaze, ``seed=None`` does not use fresh OS entropy: the seed is drawn from NumPy's
    global random generator, so ``np.random.seed(...)`` or ``lightning.seed_everything(...)``
    make the split reproducible.

    Args:
        self: A map-style dataset (one with ``__len__``).
        *fractions: The fraction of the items in each split, each in ``[0, 1]``, summing to 1.
        seed: The seed of the permutation, an integer in ``[0, 2**32)``. ``None`` draws one from
            NumPy's global random generator.

    Returns:
        One :class:`torch.utils.data.Subset` of this dataset per fraction, in the given order.
        Together they hold every item exactly once.

    Raises:
        TypeError: If the dataset has no length (an ``IterableDataset``, say), a fraction is not
            a real number or the seed is not an integer.
        ValueError: If no fraction is given, a fraction lies outside ``[0, 1]``, the fractions do
            not sum to 1 or the seed lies outside ``[0, 2**32)``.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> import pyblaze_pl.nn.data  # noqa: F401
        >>> train, val = TensorDataset(torch.arange(10)).random_split(0.8, 0.2, seed=42)
        >>> len(train), len(val)
        (8, 2)
    """
    size = _dataset_length(self)
    _check_fractions(fractions)
    if seed is None:
        seed = int(np.random.randint(0, 2**31, dtype=np.int64))
    _check_seed(seed)

    randomizer = np.random.RandomState(seed)
    sizes = [int(np.round(fraction * size)) for fraction in fractions[:-1]]
    sizes.append(size - sum(sizes))
    indices = randomizer.permutation(size)

    subsets = []
    start = 0
    for count in sizes:
        # Plain slicing, as PyBlaze: should rounding ever overshoot, the last split is empty.
        subsets.append(Subset(self, indices[start : start + count].tolist()))
        start += count
    return subsets


def loader(self: Dataset, **kwargs: Any) -> DataLoader:
    """Returns a :class:`torch.utils.data.DataLoader` over this dataset.

    If the dataset has a ``collate_fn`` attribute, the loader uses it unless ``collate_fn`` is
    passed explicitly.

    Args:
        self: The dataset to load.
        **kwargs: Passed to :class:`torch.utils.data.DataLoader` unchanged (``batch_size``,
            ``shuffle``, ``num_workers``, ...).

    Returns:
        The data loader.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> import pyblaze_pl.nn.data  # noqa: F401
        >>> batches = list(TensorDataset(torch.arange(10)).loader(batch_size=4))
        >>> len(batches)
        3
    """
    if hasattr(self, "collate_fn") and "collate_fn" not in kwargs:
        kwargs["collate_fn"] = self.collate_fn
    return DataLoader(self, **kwargs)


def install() -> None:
    """Attaches :func:`random_split` and :func:`loader` to :class:`torch.utils.data.Dataset`.

    Runs when this module is imported; calling it again has no further effect.

    Example:
        >>> from torch.utils.data import Dataset
        >>> install()
        >>> Dataset.random_split is random_split
        True
    """
    Dataset.random_split = random_split
    Dataset.loader = loader


def _dataset_length(dataset: Dataset) -> int:
    if isinstance(dataset, IterableDataset):
        received = f"{type(dataset).__name__}, an IterableDataset, which cannot be split randomly"
    elif not hasattr(dataset, "__len__"):
        received = f"{type(dataset).__name__}, which does not define `__len__`"
    else:
        return len(dataset)
    raise TypeError(
        f"Expected a map-style dataset with a length (`__len__`). Received: {received}."
    )


def _check_fractions(fractions: tuple[Any, ...]) -> None:
    if not fractions:
        raise ValueError(
            "Expected at least one fraction, e.g. `random_split(0.8, 0.2)`. Received: none."
        )
    for fraction in fractions:
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
            raise TypeError(
                f"Expected every fraction to be a real number. Received: {fraction!r} "
                f"(type {type(fraction).__name__}) in {fractions}."
            )
        if not 0 <= fraction <= 1:  # also rejects NaN
            raise ValueError(
                f"Expected every fraction to lie in [0, 1]. Received: {fraction!r} in {fractions}."
            )
    total = sum(fractions)
    if not math.isclose(total, 1):
        raise ValueError(
            f"Expected fractions that sum to 1. Received: {fractions} (sum {total:.6g})."
        )


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"Expected `seed` to be an int or None. Received: {seed!r} "
            f"(type {type(seed).__name__})."
        )
    if not 0 <= seed < 2**32:
        raise ValueError(f"Expected `seed` to lie in [0, 2**32). Received: {seed}.")


install()
