"""Shared fixtures: small deterministic data and models."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import matplotlib
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyblaze_pl.nn as xnn

matplotlib.use("Agg")


class Net(xnn.Estimator, nn.Module):
    """A small classifier: 8 features -> 3 classes."""

    __engine__ = xnn.SupervisedEngine

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(8, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def plain_trainer(pl, epochs, callbacks=(), **options):
    """A plain Lightning ``Trainer`` (namespace ``pl``) to compare with, quiet: no logger, no
    progress bar, no model summary."""
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **options,
    )


def make_dataset(n: int = 100, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return TensorDataset(x, y)


def make_loader(dataset, batch_size: int = 16, shuffle: bool = False, seed: int = 1) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net()


def clone(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


# Modules whose every test runs on both runners (runner='auto' picks the Fabric runner for most of
# their calls; PYBLAZE_PL_RUNNER forces one).
BOTH_RUNNERS = {
    "test_engine",
    "test_saving_schedule",
    "test_streaming_metrics",
    "test_reliability",
    "test_parity_pyblaze",
    "test_parity_generative",
    "test_parity_calls",
    "test_compat",
    "test_syncs",
}


@pytest.fixture(autouse=True)
def pyblaze_runner(request, monkeypatch):
    runner = getattr(request, "param", None)
    if runner is not None:
        monkeypatch.setenv("PYBLAZE_PL_RUNNER", runner)
    return runner


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in BOTH_RUNNERS:
        metafunc.parametrize("pyblaze_runner", ["trainer", "fabric"], indirect=True)


@pytest.fixture(scope="session")
def notebook_kernel(tmp_path_factory):
    """One Jupyter kernel for every notebook test (starting one takes seconds): a
    ``(KernelManager, KernelClient)`` pair. The kernel runs this interpreter with this checkout
    first on its path (so it imports the code under test), in a temporary folder, with Jupyter's
    own matplotlib backend (inline) whatever MPLBACKEND the test run sets."""
    from jupyter_client import KernelManager

    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    manager = KernelManager(kernel_name="python3")  # "python" in its command: sys.executable
    manager.start_kernel(env=env, cwd=str(tmp_path_factory.mktemp("kernel")))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
