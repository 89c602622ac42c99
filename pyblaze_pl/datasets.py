"""Small image data sets for demos and tests.

* :func:`digits`: scikit-learn's bundled 8x8 digits, shaped like CIFAR-10 (3x32x32), so
  CIFAR models run on it unchanged. Needs no download, only ``pip install scikit-learn``.
* :func:`cifar10`: the real CIFAR-10 from its official python-format files, read without
  executing pickled code.
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

__all__ = ["cifar10", "digits"]

DIGITS_SPLIT_SEED = 0
"""Seed of the permutation that splits :func:`digits` into train (first 80 %) and test."""

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def digits(train: bool = True) -> TensorDataset:
    """Returns scikit-learn's 8x8 handwritten digits as 3x32x32 images, like CIFAR-10's.

    The 1797 images of ``sklearn.datasets.load_digits`` (bundled with scikit-learn, no
    download) are scaled from ``0..16`` to ``[0, 1]``, upsampled to 32x32 by bilinear
    interpolation (``align_corners=False``) and repeated to 3 channels, so the PyBlaze
    tutorial's CIFAR CNN runs on them unchanged. The split is fixed: the images are permuted
    with ``np.random.RandomState(DIGITS_SPLIT_SEED)`` (seed 0); the first 1437 (80 %) are the
    train set, the remaining 360 the test set.

    Args:
        train: Whether to return the train set (1437 images) or the test set (360 images).

    Returns:
        A dataset of ``(image, label)`` pairs: ``image`` a float32 tensor of shape
        ``[3, 32, 32]`` with values in ``[0, 1]``, ``label`` an int64 scalar tensor in ``0..9``.

    Raises:
        ImportError: If scikit-learn is not installed.
        TypeError: If ``train`` is not a bool.

    Example:
        >>> from pyblaze_pl.datasets import digits
        >>> images, labels = digits(train=False).tensors
        >>> tuple(images.shape), labels.dtype
        ((360, 3, 32, 32), torch.int64)
    """
    _check_train(train)
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "digits() needs scikit-learn, which is not installed. "
            "Install it with `pip install scikit-learn`."
        ) from exc

    bunch = load_digits()
    permutation = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(bunch.target))
    num_train = len(permutation) * 4 // 5
    chosen = permutation[:num_train] if train else permutation[num_train:]

    images = torch.from_numpy(bunch.images[chosen]).float().div(16).unsqueeze(1)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1).repeat(1, 3, 1, 1)
    labels = torch.from_numpy(bunch.target[chosen]).long()
    return TensorDataset(images, labels)


def cifar10(root: str | os.PathLike[str], train: bool = True, download: bool = False) -> Dataset:
    """Returns CIFAR-10 from the official python-format files.

    Reads ``<root>/cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (train, in this order)
    or ``test_batch`` (test). Items equal those of
    ``torchvision.datasets.CIFAR10(root, train, transform=transforms.ToTensor())``. The images are
    kept in memory as uint8 and converted when an item is read.

    The batch files are pickles. They are read with an unpickler that only builds NumPy arrays
    and refuses everything else, so a tampered file cannot run code.

    Args:
        root: The folder that holds (or receives) ``cifar-10-batches-py``; ``~`` is expanded.
        train: Whether to return the 50000 train images or the 10000 test images.
        download: Whether to download and extract the official archive (170 MB, md5-verified,
            via torchvision) into ``root`` if ``cifar-10-batches-py`` is missing there.

    Returns:
        A dataset of ``(image, label)`` pairs: ``image`` a float32 tensor of shape
        ``[3, 32, 32]`` with values in ``[0, 1]``, ``label`` an int in ``0..9``. Its ``classes``
        attribute names the labels and ``targets`` lists the labels of all items.

    Raises:
        FileNotFoundError: If the folder or one of its batch files is missing and
            ``download=False``.
        pickle.UnpicklingError: If a batch file refers to anything but NumPy arrays.
        RuntimeError: If a batch file is corrupt, truncated or holds unexpected data.

    Example:
        >>> from pyblaze_pl.datasets import cifar10
        >>> data = cifar10("~/Downloads", train=True, download=True)  # doctest: +SKIP
        >>> image, label = data[0]  # doctest: +SKIP
        >>> tuple(image.shape), label  # doctest: +SKIP
        ((3, 32, 32), 6)
    """
    _check_train(train)
    root = Path(os.path.expanduser(os.fspath(root)))
    folder = root / CIFAR10_FOLDER
    if not folder.is_dir():
        if not download:
            raise FileNotFoundError(
                f"Expected the CIFAR-10 folder {folder}, but it does not exist. "
                "Pass download=True to download it (170 MB)."
            )
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(CIFAR10_URL, download_root=str(root), md5=CIFAR10_MD5)
        except OSError as e:
            raise OSError(
                f"Expected to download CIFAR-10 into {folder}, but the download failed ({e}). "
                f"Without network access, extract the official archive cifar-10-python.tar.gz "
                f"so that {folder} holds its batch files."
            ) from e

    files = [folder / name for name in (CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES)]
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Expected the CIFAR-10 batch files {[path.name for path in files]} in {folder}. "
            f"Missing: {missing}. Delete the folder and pass download=True to download it again."
        )
    batches = [_read_batch(path) for path in files]
    images = np.concatenate([images for images, _ in batches])
    labels = [label for _, batch_labels in batches for label in batch_labels]
    return _CIFAR10(torch.from_numpy(images.reshape(-1, 3, 32, 32)), labels)


class _CIFAR10(Dataset):
    """CIFAR-10 images kept as uint8 ``[N, 3, 32, 32]``, served as float tensors in ``[0, 1]``."""

    classes = CIFAR10_CLASSES

    def __init__(self, images: torch.Tensor, targets: list[int]) -> None:
        self.images = images
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # The same operations as torchvision's ToTensor, so the values match bit for bit.
        return self.images[index].float().div(255), self.targets[index]


# What NumPy's array pickles refer to, under NumPy 1 (numpy.core), NumPy 2 (numpy._core) and
# pickle protocols 2 to 5. The objects come from NumPy's own __reduce__, so they are the right
# ones whatever the installed NumPy version calls them.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_FROMBUFFER = np.empty(0).__reduce_ex__(5)[0]
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
}


class _RefusedGlobalError(pickle.UnpicklingError):
    pass


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and builtin containers only; refuses every other global."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        # latin1 reads the Python 2 strings of the official files, as torchvision does.
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = sorted(f"{mod}.{attr}" for mod, attr in _ALLOWED_GLOBALS)
            raise _RefusedGlobalError(
                f"Refusing to load {module}.{name} from {self.path}: a CIFAR-10 batch file only "
                f"holds NumPy arrays, so only {allowed} may be loaded. The file is not a genuine "
                "CIFAR-10 batch; delete it and download the data set again."
            ) from None


def _read_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """Returns the uint8 images ``[N, 3072]`` and the labels of one batch file."""
    try:
        with open(path, "rb") as file:
            entry = _BatchUnpickler(file, path).load()
    except _RefusedGlobalError:
        raise
    except Exception as exc:  # garbage input can fail in any way; report it as a corrupt file
        raise RuntimeError(
            f"Could not read the CIFAR-10 batch file {path}: it is corrupt or truncated "
            f"({type(exc).__name__}: {exc}). Delete {path.parent} and pass download=True to "
            "download it again."
        ) from exc

    images = _entry(entry, "data", path)
    labels = _entry(entry, "labels", path)
    if not (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.ndim == 2
        and images.shape[1] == 3 * 32 * 32
        and isinstance(labels, (list, tuple, np.ndarray))
        and len(labels) == len(images)
    ):
        found = (
            f"{images.dtype} array of shape {images.shape}"
            if isinstance(images, np.ndarray)
            else type(images).__name__
        )
        raise RuntimeError(
            f"Expected N uint8 images of 3x32x32 bytes (shape [N, 3072]) and a list of N labels "
            f"in {path}. Received: images {found}, labels {type(labels).__name__} of length "
            f"{len(labels) if hasattr(labels, '__len__') else '?'}."
        )
    return images, [int(label) for label in labels]


def _entry(entry: Any, key: str, path: Path) -> Any:
    """Returns ``entry[key]``, accepting bytes keys (Python 3 pickles) and str keys."""
    if isinstance(entry, dict):
        for candidate in (key, key.encode()):
            if candidate in entry:
                return entry[candidate]
    keys = sorted(map(repr, entry)) if isinstance(entry, dict) else type(entry).__name__
    raise RuntimeError(f"Expected a dict with the key {key!r} in {path}. Received: {keys}.")


def _check_train(train: Any) -> None:
    if not isinstance(train, bool):
        raise TypeError(f"Expected `train` to be a bool. Received: {train!r}.")
