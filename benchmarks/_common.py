"""Workloads shared by every contender: models, data, thread settings, memory probes.

Everything here depends on torch only (never on pytorch_lightning, pyblaze_pl or pyblaze), so a
contender process imports exactly the framework it measures.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, TensorDataset


@dataclass(frozen=True)
class Size:
    """How big one workload is."""

    samples: int
    batch_size: int
    epochs: int = 1


# Full sizes (make bench) and the --quick smoke test sizes.
SIZES = {
    "full": {
        "a": Size(samples=6144, batch_size=256, epochs=1),  # 24 steps of the tutorial CNN
        "b": Size(samples=8192, batch_size=32, epochs=2),  # 512 steps of the 16-32-4 MLP
        "c": Size(samples=4096, batch_size=2048),  # 1x validation set; 10x = 40,960 images
        "gpu": Size(samples=50_000, batch_size=256, epochs=2),  # CIFAR-10-sized, GPU only
    },
    "quick": {
        "a": Size(samples=1024, batch_size=256, epochs=1),
        "b": Size(samples=1024, batch_size=32, epochs=2),
        "c": Size(samples=1024, batch_size=512),
        "gpu": Size(samples=4096, batch_size=256, epochs=1),
    },
}


def set_threads(threads: int) -> None:
    """Fixes torch's intra-op threads (and one inter-op thread) for the whole process."""
    torch.set_num_threads(threads)
    # RuntimeError: already set (parallel work happened before); keep going.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


# --------------------------------------------------------------------------------------------
# models


class TutorialCNN(nn.Module):
    """The CNN of the PyBlaze tutorial "Training a Classifier" (3x32x32 -> 10 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 400)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    """The tiny 16-32-4 MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


MODELS = {"a": TutorialCNN, "b": MLP, "c": TutorialCNN, "gpu": TutorialCNN}


# --------------------------------------------------------------------------------------------
# data


def make_dataset(workload: str, samples: int, seed: int) -> Dataset:
    """The same data for every contender: a function of (workload, samples, seed) only."""
    gen = torch.Generator().manual_seed(seed)
    if workload == "b":
        x = torch.randn(samples, 16, generator=gen)
        teacher = torch.randn(16, 4, generator=gen)
        return TensorDataset(x, (x @ teacher).argmax(dim=1))
    x = torch.randn(samples, 3, 32, 32, generator=gen)
    return TensorDataset(x, torch.randint(0, 10, (samples,), generator=gen))


class CyclicImages(Dataset):
    """``samples`` validation images drawn cyclically from a fixed pool of ``pool`` images.

    Its memory does not depend on ``samples``, so the peak memory of an evaluation over 1x and
    10x the data differs only by what the evaluation itself keeps.
    """

    def __init__(self, samples: int, pool: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.samples = samples
        self.x = torch.randn(pool, 3, 32, 32, generator=gen)
        self.y = torch.randint(0, 10, (pool,), generator=gen)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = index % len(self.x)
        return self.x[i], self.y[i]


class EpochShuffle(Sampler[int]):
    """A fresh permutation on every pass, a function of ``(seed, pass number)`` only.

    ``shuffle=True`` with a seeded generator is not enough for identical runs: torch's
    ``RandomSampler`` draws one more permutation when a loop runs the iterator to its end (a
    hand-written ``for`` loop does; Lightning and PyBlaze stop after ``len(loader)`` batches),
    so the second epoch would differ.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.passes = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.passes)
        self.passes += 1
        return iter(torch.randperm(self.size, generator=gen).tolist())


def train_loader(dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
    """A shuffling loader whose order depends on ``seed`` only (no worker processes)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=EpochShuffle(len(dataset), seed))


def one_batch_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    """A loader with exactly one batch (for warm-up and the fixed-cost probe)."""
    return DataLoader(Subset(dataset, range(batch_size)), batch_size=batch_size)


def checksum(model: nn.Module) -> list[float]:
    """Two numbers that change when any trained weight changes: sum and sum of squares."""
    with torch.no_grad():
        flat = torch.cat([p.detach().double().reshape(-1).cpu() for p in model.parameters()])
    return [float(flat.sum()), float((flat * flat).sum())]


# --------------------------------------------------------------------------------------------
# memory (Linux)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{field} is missing from /proc/self/status")
    return int(match.group(1))


def rss_mb() -> float:
    """The resident set size now (MiB)."""
    return _status_kb("VmRSS") / 1024


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark (VmHWM) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """The peak resident set size since the last :func:`reset_peak_rss` (MiB)."""
    return _status_kb("VmHWM") / 1024
