"""Tests of Dataset.random_split and Dataset.loader (pyblaze_pl.nn.data)."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, Subset, TensorDataset

from pyblaze_pl.nn import data


def _dataset(size: int) -> TensorDataset:
    return TensorDataset(torch.arange(size) * 10)


def _pyblaze_v1_split(size: int, fractions: tuple[float, ...], seed: int) -> list[list[int]]:
    """PyBlaze v1's random_split algorithm, written out independently."""
    permutation = np.random.RandomState(seed).permutation(size)
    bounds = [0]
    for fraction in fractions[:-1]:
        bounds.append(bounds[-1] + int(np.round(fraction * size)))
    bounds.append(size)
    return [permutation[a:b].tolist() for a, b in itertools.pairwise(bounds)]


def _indices(subsets: list[Subset]) -> list[list[int]]:
    return [list(subset.indices) for subset in subsets]


def test_install_attaches_the_helpers_to_every_dataset_idempotently():
    assert Dataset.random_split is data.random_split
    assert Dataset.loader is data.loader
    data.install()
    assert Dataset.random_split is data.random_split
    assert TensorDataset.loader is data.loader


@pytest.mark.parametrize(
    ("size", "fractions", "sizes"),
    [
        (10, (0.8, 0.2), [8, 2]),
        (100, (0.5, 0.3, 0.2), [50, 30, 20]),
        (7, (1 / 3, 1 / 3, 1 / 3), [2, 2, 3]),  # the last split takes the remainder
        (5, (0.5, 0.5), [2, 3]),  # np.round rounds 2.5 to even, as in PyBlaze
        (1, (1.0,), [1]),
        (3, (0.0, 1.0), [0, 3]),
        (50000, (0.8, 0.2), [40000, 10000]),
    ],
)
def test_random_split_sizes_and_disjoint_cover(size, fractions, sizes):
    subsets = _dataset(size).random_split(*fractions, seed=0)

    assert all(isinstance(subset, Subset) for subset in subsets)
    assert [len(subset) for subset in subsets] == sizes
    flat = [index for indices in _indices(subsets) for index in indices]
    assert sorted(flat) == list(range(size))


def test_random_split_matches_known_permutation():
    # np.random.RandomState(0).permutation(10) == [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]
    train, val = _dataset(10).random_split(0.8, 0.2, seed=0)

    assert _indices([train, val]) == [[2, 8, 4, 9, 1, 6, 7, 3], [0, 5]]
    assert [int(item[0]) for item in val] == [0, 50]


@pytest.mark.parametrize("seed", [0, 1, 42, 12345, 2**32 - 1])
@pytest.mark.parametrize(
    ("size", "fractions"), [(1000, (0.7, 0.2, 0.1)), (999, (0.25, 0.25, 0.5)), (13, (0.8, 0.2))]
)
def test_random_split_selects_the_same_items_as_pyblaze_v1(seed, size, fractions):
    dataset = _dataset(size)
    subsets = dataset.random_split(*fractions, seed=seed)

    expected = _pyblaze_v1_split(size, fractions, seed)
    assert _indices(subsets) == expected
    for subset, indices in zip(subsets, expected, strict=True):
        assert [int(item[0]) for item in subset] == [10 * index for index in indices]


def test_random_split_accepts_numpy_numbers():
    dataset = _dataset(20)
    expected = _indices(dataset.random_split(0.75, 0.25, seed=3))

    split = dataset.random_split(np.float32(0.75), np.float64(0.25), seed=np.int64(3))
    assert _indices(split) == expected


def test_random_split_without_seed_follows_numpys_global_seed():
    dataset = _dataset(1000)

    np.random.seed(123)
    first = _indices(dataset.random_split(0.5, 0.5))
    again = _indices(dataset.random_split(0.5, 0.5))
    np.random.seed(123)
    replay = _indices(dataset.random_split(0.5, 0.5))

    assert first == replay
    assert first != again


def test_random_split_without_seed_follows_lightning_seed_everything():
    pl = pytest.importorskip("pytorch_lightning")
    dataset = _dataset(1000)

    pl.seed_everything(7, verbose=False)
    first = _indices(dataset.random_split(0.8, 0.2))
    pl.seed_everything(7, verbose=False)
    assert _indices(dataset.random_split(0.8, 0.2)) == first


class _NoLength(Dataset):
    def __getitem__(self, index):
        return index


class _Stream(IterableDataset):
    def __iter__(self):
        return iter(range(3))

    def __len__(self):
        return 3


@pytest.mark.parametrize(
    ("fractions", "kwargs", "error", "fragments"),
    [
        ((), {}, ValueError, ["at least one fraction", "Received: none"]),
        (("0.5", 0.5), {}, TypeError, ["real number", "'0.5'", "str"]),
        ((True,), {}, TypeError, ["real number", "True", "bool"]),
        ((None, 1.0), {}, TypeError, ["real number", "None"]),
        ((-0.2, 1.2), {}, ValueError, ["[0, 1]", "Received: -0.2"]),
        ((1.5, -0.5), {}, ValueError, ["[0, 1]", "Received: 1.5"]),
        ((math.nan,), {}, ValueError, ["[0, 1]", "nan"]),
        (
            (0.5, 0.3),
            {},
            ValueError,
            ["Expected fractions that sum to 1. Received: (0.5, 0.3) (sum 0.8)."],
        ),
        ((0.6, 0.6), {}, ValueError, ["sum to 1", "(0.6, 0.6)", "sum 1.2"]),
        ((0.8, 0.2), {"seed": 1.5}, TypeError, ["`seed`", "int or None", "1.5", "float"]),
        ((0.8, 0.2), {"seed": "1"}, TypeError, ["`seed`", "'1'", "str"]),
        ((0.8, 0.2), {"seed": True}, TypeError, ["`seed`", "True", "bool"]),
        ((0.8, 0.2), {"seed": -1}, ValueError, ["`seed`", "[0, 2**32)", "Received: -1"]),
        ((0.8, 0.2), {"seed": 2**32}, ValueError, ["`seed`", "[0, 2**32)"]),
    ],
)
def test_random_split_rejects_bad_arguments(fractions, kwargs, error, fragments):
    with pytest.raises(error) as info:
        _dataset(10).random_split(*fractions, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize("dataset", [_NoLength(), _Stream()], ids=["no-len", "iterable"])
def test_random_split_rejects_datasets_without_length(dataset):
    with pytest.raises(TypeError) as info:
        dataset.random_split(0.5, 0.5, seed=0)
    assert "map-style dataset" in str(info.value)
    assert type(dataset).__name__ in str(info.value)


def test_random_split_checks_before_drawing_a_seed():
    np.random.seed(5)
    state = np.random.get_state()[1].copy()
    with pytest.raises(ValueError, match="sum to 1"):
        _dataset(10).random_split(0.5, 0.3)
    assert np.array_equal(np.random.get_state()[1], state)


class _WithCollate(TensorDataset):
    def collate_fn(self, items):
        return ("dataset collate", len(items))


def test_loader_passes_every_argument_to_the_data_loader():
    loader = _dataset(10).loader(batch_size=4, drop_last=True)

    assert isinstance(loader, torch.utils.data.DataLoader)
    assert loader.batch_size == 4
    batches = list(loader)
    assert len(batches) == 2
    assert torch.equal(batches[0][0], torch.tensor([0, 10, 20, 30]))  # default collate


def test_loader_uses_the_datasets_collate_fn():
    dataset = _WithCollate(torch.arange(10))

    assert list(dataset.loader(batch_size=4)) == [("dataset collate", n) for n in (4, 4, 2)]


def test_loader_prefers_an_explicit_collate_fn():
    dataset = _WithCollate(torch.arange(10))

    loader = dataset.loader(batch_size=5, collate_fn=lambda items: ("explicit", len(items)))
    assert list(loader) == [("explicit", 5), ("explicit", 5)]


def test_loader_on_random_splits():
    train, val = _dataset(10).random_split(0.8, 0.2, seed=0)

    batch = next(iter(val.loader(batch_size=8)))
    assert torch.equal(batch[0], torch.tensor([0, 50]))
    assert len(train.loader(batch_size=3, shuffle=True)) == 3
