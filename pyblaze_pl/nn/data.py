"""Dataset helpers that PyBlaze adds to every :class:`torch.utils.data.Dataset`.

Importing this module (which ``import pyblaze_pl.nn`` does) runs :func:`install`, which attaches
:func:`random_split`, :func:`split` and :func:`loader` as methods of
:class:`torch.utils.data.Dataset`, so every map-style dataset, including torchvision's, gains
them::

    import pyblaze_pl.nn  # noqa: F401  (installs the helpers)

    train, val = dataset.random_split(0.8, 0.2)
    train_loader = train.loader(batch_size=256, shuffle=True)

Installing is idempotent: importing again or calling :func:`install` again changes nothing.

The module also holds PyBlaze 2.x's data wrappers :class:`TransformDataset` and
:class:`ZipDataLoader`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

__all__ = ["TransformDataset", "ZipDataLoader", "install", "loader", "random_split", "split"]


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


def split(self: Dataset, condition: Callable[[Any], bool]) -> tuple[Subset, Subset]:
    """Splits the dataset into the items for which ``condition`` holds and the others
    (PyBlaze 2.x).

    Args:
        self: A map-style dataset (one with ``__len__``); every item is read once.
        condition: Called on each item.

    Returns:
        Two :class:`torch.utils.data.Subset`: the items for which ``condition`` is true, and
        the rest, each in dataset order.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> import pyblaze_pl.nn.data  # noqa: F401
        >>> even, odd = TensorDataset(torch.arange(5)).split(lambda item: item[0] % 2 == 0)
        >>> even.indices, odd.indices
        ([0, 2, 4], [1, 3])
    """
    size = _dataset_length(self, "split")
    chosen = [bool(condition(self[i])) for i in range(size)]
    return (
        Subset(self, [i for i, c in enumerate(chosen) if c]),
        Subset(self, [i for i, c in enumerate(chosen) if not c]),
    )


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
    """Attaches :func:`random_split`, :func:`split` and :func:`loader` to
    :class:`torch.utils.data.Dataset`.

    Runs when this module is imported; calling it again has no further effect.

    Example:
        >>> from torch.utils.data import Dataset
        >>> install()
        >>> Dataset.random_split is random_split
        True
    """
    Dataset.random_split = random_split
    Dataset.split = split
    Dataset.loader = loader


class TransformDataset(Dataset):
    """A dataset whose items are another dataset's items passed through transforms
    (PyBlaze 2.x).

    Args:
        source: The dataset to read from.
        *transforms: Functions applied in order: the first receives the source's item, each
            further one the previous one's output.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> doubled = TransformDataset(TensorDataset(torch.arange(3)), lambda item: item[0] * 2)
        >>> len(doubled), doubled[2]
        (3, tensor(4))
    """

    def __init__(self, source: Dataset, *transforms: Callable[[Any], Any]) -> None:
        super().__init__()
        self.source = source
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Any:
        item = self.source[index]
        for transform in self.transforms:
            item = transform(item)
        return item


class ZipDataLoader:
    """Iterates two loaders side by side, taking ``lhs_count`` batches of the first and
    ``rhs_count`` of the second per step (PyBlaze 2.x; e.g. several critic batches per
    generator batch of a Wasserstein GAN).

    Each step yields ``(lhs_batches, rhs_batches)``, two lists; iteration ends when either loader
    is exhausted. The length is the smaller of ``len(lhs_loader) // lhs_count`` and
    ``len(rhs_loader) // rhs_count`` over the loaders that have a length.

    Args:
        lhs_loader: The first loader.
        rhs_loader: The second loader (its ``batch_size`` must equal the first's).
        lhs_count: Batches of the first loader per step.
        rhs_count: Batches of the second loader per step.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> zipped = ZipDataLoader(DataLoader(torch.arange(8), batch_size=2),
        ...                        DataLoader(torch.arange(4), batch_size=2), lhs_count=2)
        >>> len(zipped), next(iter(zipped))
        (2, ([tensor([0, 1]), tensor([2, 3])], [tensor([0, 1])]))
    """

    def __init__(
        self, lhs_loader: Iterable, rhs_loader: Iterable, lhs_count: int = 1, rhs_count: int = 1
    ) -> None:
        lhs_size = getattr(lhs_loader, "batch_size", None)
        rhs_size = getattr(rhs_loader, "batch_size", None)
        if lhs_size != rhs_size:
            raise ValueError(
                f"Expected both loaders to have the same batch size. Received: {lhs_size} and "
                f"{rhs_size}."
            )
        for name, count in (("lhs_count", lhs_count), ("rhs_count", rhs_count)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"Expected {name} to be an int >= 1. Received: {count!r}.")
        self.lhs_loader = lhs_loader
        self.rhs_loader = rhs_loader
        self.lhs_count = lhs_count
        self.rhs_count = rhs_count

    def __len__(self) -> int:
        sizes = []
        pairs = ((self.lhs_loader, self.lhs_count), (self.rhs_loader, self.rhs_count))
        for loader_, count in pairs:
            try:
                sizes.append(len(loader_) // count)
            except TypeError:  # an iterable-style loader has no length
                continue
        if not sizes:
            raise TypeError("ZipDataLoader has no length: neither loader has one.")
        return min(sizes)

    def __iter__(self) -> Iterator[tuple[list[Any], list[Any]]]:
        lhs, rhs = iter(self.lhs_loader), iter(self.rhs_loader)
        while True:
            try:
                lhs_items = [next(lhs) for _ in range(self.lhs_count)]
                rhs_items = [next(rhs) for _ in range(self.rhs_count)]
            except StopIteration:
                return
            yield lhs_items, rhs_items


def _dataset_length(dataset: Dataset, action: str = "split randomly") -> int:
    if isinstance(dataset, IterableDataset):
        received = f"{type(dataset).__name__}, an IterableDataset, which cannot be {action}"
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
