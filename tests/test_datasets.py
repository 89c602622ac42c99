"""Tests of pyblaze_pl.datasets: digits and cifar10 (on small CIFAR-format folders, no network)."""

import io
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.transforms as transforms

from pyblaze_pl import datasets

# --------------------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def sklearn_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    return sklearn_datasets.load_digits()


def test_digits_shapes_dtypes_and_value_range(sklearn_digits):
    for train, size in [(True, 1437), (False, 360)]:
        images, labels = datasets.digits(train=train).tensors

        assert images.shape == (size, 3, 32, 32)
        assert images.dtype == torch.float32
        assert labels.shape == (size,)
        assert labels.dtype == torch.int64
        assert images.min() == 0 and images.max() == 1
        assert set(labels.tolist()) == set(range(10))
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])


def test_digits_split_is_the_documented_permutation(sklearn_digits):
    permutation = np.random.RandomState(0).permutation(1797)
    for train, chosen in [(True, permutation[:1437]), (False, permutation[1437:])]:
        images, labels = datasets.digits(train=train).tensors

        assert labels.tolist() == sklearn_digits.target[chosen].tolist()
        original = torch.from_numpy(sklearn_digits.images[chosen]).float() / 16
        # With align_corners=False the four corners of the 32x32 image are the 8x8 corners.
        assert torch.equal(images[:, 0, 0, 0], original[:, 0, 0])
        assert torch.equal(images[:, 0, -1, -1], original[:, -1, -1])
        upsampled = F.interpolate(
            original[:5, None], scale_factor=4, mode="bilinear", align_corners=False
        )
        torch.testing.assert_close(images[:5, :1], upsampled)


def test_digits_train_and_test_are_disjoint_and_deterministic(sklearn_digits):
    train = datasets.digits(train=True).tensors[0]
    test = datasets.digits(train=False).tensors[0]

    train_images = {image.numpy().tobytes() for image in train}
    test_images = {image.numpy().tobytes() for image in test}
    assert len(train_images) == 1437 and len(test_images) == 360
    assert not train_images & test_images
    assert torch.equal(datasets.digits(train=True).tensors[0], train)


def test_digits_fits_the_tutorials_cifar_cnn(sklearn_digits):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )
    images, labels = next(iter(torch.utils.data.DataLoader(datasets.digits(), batch_size=8)))

    assert model(images).shape == (8, 10)
    assert labels.shape == (8,)


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        datasets.digits()


def test_digits_rejects_a_non_bool_train():
    with pytest.raises(TypeError, match=r"`train` to be a bool\. Received: 'test'"):
        datasets.digits(train="test")


# -------------------------------------------------------------------------------------- cifar10

PER_BATCH = 2
BATCH_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), like the official CIFAR-10 files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_python2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_python2_str


def _dumps(obj, protocol):
    if protocol != "python2":
        return pickle.dumps(obj, protocol=protocol)
    with_bytes = io.BytesIO()
    _Python2Pickler(with_bytes, protocol=2).dump(obj)
    # NumPy 1 / Python 2 name of the array-rebuilding function.
    return with_bytes.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def _write_cifar(root: Path, protocol=2) -> dict:
    """Writes a CIFAR-10 folder with PER_BATCH images per batch file; returns the batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    batches = {}
    for number, name in enumerate(BATCH_NAMES):
        batch = {
            b"batch_label": f"batch {number}".encode(),
            b"labels": [int(label) for label in rng.randint(10, size=PER_BATCH)],
            b"data": rng.randint(256, size=(PER_BATCH, 3072)).astype(np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(PER_BATCH)],
        }
        (folder / name).write_bytes(_dumps(batch, protocol))
        batches[name] = batch
    meta = {b"label_names": [name.encode() for name in datasets.CIFAR10_CLASSES]}
    (folder / "batches.meta").write_bytes(_dumps(meta, protocol))
    return batches


def _to_tensor(row: np.ndarray) -> torch.Tensor:
    """torchvision's ToTensor of the HWC image stored channel-major in one batch row."""
    return transforms.ToTensor()(row.reshape(3, 32, 32).transpose(1, 2, 0))


@pytest.mark.parametrize("protocol", ["python2", 2, 4, 5])
def test_cifar10_items_equal_to_tensor_of_the_stored_images(tmp_path, protocol):
    batches = _write_cifar(tmp_path, protocol)

    train = datasets.cifar10(tmp_path, train=True)
    test = datasets.cifar10(tmp_path, train=False)

    rows = [(row, label) for name in BATCH_NAMES[:5] for row, label in _rows(batches[name])]
    assert len(train) == 5 * PER_BATCH
    assert len(test) == PER_BATCH
    for (image, label), (row, expected_label) in zip(train, rows, strict=True):
        assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
        assert torch.equal(image, _to_tensor(row))
        assert type(label) is int and label == expected_label
    for (image, label), (row, expected_label) in zip(
        test, _rows(batches["test_batch"]), strict=True
    ):
        assert torch.equal(image, _to_tensor(row))
        assert label == expected_label
    assert train.targets == [label for _, label in rows]
    assert train.classes[0] == "airplane" and len(train.classes) == 10


def _rows(batch):
    return zip(batch[b"data"], batch[b"labels"], strict=True)


def test_cifar10_matches_torchvision_on_the_same_files(tmp_path, monkeypatch):
    _write_cifar(tmp_path, protocol="python2")  # torchvision expects the str keys of Python 2
    # The small files do not have the official md5 sums; torchvision reads them all the same.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)

    for train in (True, False):
        ours = datasets.cifar10(tmp_path, train=train)
        reference = torchvision.datasets.CIFAR10(
            tmp_path, train=train, transform=transforms.ToTensor()
        )
        assert len(ours) == len(reference)
        for (image, label), (expected_image, expected_label) in zip(ours, reference, strict=True):
            assert torch.equal(image, expected_image)
            assert label == expected_label


def test_cifar10_keeps_uint8_images(tmp_path):
    _write_cifar(tmp_path)

    train = datasets.cifar10(tmp_path)
    assert train.images.dtype == torch.uint8
    assert train.images.shape == (5 * PER_BATCH, 3, 32, 32)


def test_cifar10_expands_the_home_folder(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "data")
    monkeypatch.setenv("HOME", str(tmp_path))

    assert len(datasets.cifar10("~/data", train=False)) == PER_BATCH


def test_cifar10_missing_folder_says_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        datasets.cifar10(tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)
    assert "download=True" in str(info.value)


def test_cifar10_missing_batch_file_is_named(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()

    with pytest.raises(FileNotFoundError, match=r"Missing: \['data_batch_3'\]"):
        datasets.cifar10(tmp_path)
    assert len(datasets.cifar10(tmp_path, train=False)) == PER_BATCH


def test_cifar10_download_fetches_the_official_archive(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, md5=None, **kwargs):
        calls.append((url, download_root, md5))
        _write_cifar(Path(download_root))

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", fake_download)

    assert len(datasets.cifar10(tmp_path, train=False, download=True)) == PER_BATCH
    assert calls == [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            str(tmp_path),
            "c58f30108f718f92721af3b95e74349a",
        )
    ]
    datasets.cifar10(tmp_path, download=True)  # present now: no second download
    assert len(calls) == 1


class _RunsCode:
    """A pickle whose loading calls ``function(*args)``."""

    def __init__(self, function, *args):
        self.call = (function, args)

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize(
    ("make_payload", "refused"),
    [
        (lambda marker: _RunsCode(os.system, f"touch '{marker}'"), "system"),
        (lambda marker: _RunsCode(open, str(marker), "w"), "open"),
        (lambda marker: _RunsCode(Path.touch, marker), "getattr"),
    ],
    ids=["os.system", "open", "Path.touch"],
)
def test_cifar10_refuses_pickles_that_run_code(tmp_path, make_payload, refused):
    # The payload works: plain pickle.load runs it and creates the marker.
    sanity_marker = tmp_path / "sanity"
    result = pickle.loads(pickle.dumps(make_payload(sanity_marker)))
    if hasattr(result, "close"):
        result.close()  # the file that open() returned
    assert sanity_marker.exists()

    _write_cifar(tmp_path / "root")
    marker = tmp_path / "pwned"
    batch = {b"data": make_payload(marker), b"labels": [0, 1]}
    path = tmp_path / "root" / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(pickle.dumps(batch, protocol=2))

    with pytest.raises(pickle.UnpicklingError) as info:
        datasets.cifar10(tmp_path / "root")
    assert "Refusing" in str(info.value)
    assert refused in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda content: content[: len(content) // 2],  # truncated download
        lambda content: b"this is not a pickle",
        lambda content: b"",
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_cifar10_corrupt_batch_file_is_named(tmp_path, corrupt):
    _write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    path.write_bytes(corrupt(path.read_bytes()))

    with pytest.raises(RuntimeError) as info:
        datasets.cifar10(tmp_path)
    assert str(path) in str(info.value)
    assert "corrupt or truncated" in str(info.value)
    assert "download=True" in str(info.value)


@pytest.mark.parametrize(
    ("batch", "fragments"),
    [
        ({b"labels": [0, 1]}, ["key 'data'", "b'labels'"]),
        ({b"data": np.zeros((2, 3072), np.uint8)}, ["key 'labels'"]),
        ([1, 2, 3], ["key 'data'", "list"]),
        ({b"data": np.zeros((2, 3072)), b"labels": [0, 1]}, ["float64 array of shape (2, 3072)"]),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, ["shape (2, 1024)"]),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, ["labels list of length 1"]),
    ],
    ids=["no-data", "no-labels", "not-a-dict", "float-images", "wrong-size", "label-count"],
)
def test_cifar10_unexpected_content_is_named(tmp_path, batch, fragments):
    _write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))

    with pytest.raises(RuntimeError) as info:
        datasets.cifar10(tmp_path, train=False)
    assert str(path) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)
