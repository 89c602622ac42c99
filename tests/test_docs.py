"""Every Python block of README.md and docs/*.md runs (issue 11, §6).

The blocks of one file run in order in one namespace, in a temporary working directory, after a
prelude (the fixture) that defines what the prose assumes: ``model``, ``train_loader``, ... on
tiny data. An HTML comment right before a block changes that:

- ``<!-- docs-test: skip (reason) -->`` skips the block (only for what a test cannot start:
  several processes or machines); the reason is required.

A block that raises fails the test, naming the file and the block's line.
"""

from __future__ import annotations

import contextlib
import pathlib
import re

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"(?:<!--\s*docs-test:\s*(?P<marker>.*?)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.S
)

PRELUDE = """
import pytorch_lightning as pl
import torch
from torch import nn, optim
from torch.utils.data import TensorDataset

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X

torch.manual_seed(0)


class Model(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)


def _data(n, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    return TensorDataset(x, torch.randint(0, 3, (n,), generator=generator))


model = Model()
train_val_dataset = _data(80, 0)
train_loader = _data(64, 1).loader(batch_size=16)
val_loader = _data(32, 2).loader(batch_size=16)
test_loader = _data(32, 3).loader(batch_size=16)
loss = nn.CrossEntropyLoss()
"""


def blocks(path: pathlib.Path) -> list[tuple[int, str | None, str]]:
    text = path.read_text()
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("marker"), m.group("code"))
        for m in _BLOCK.finditer(text)
    ]


@contextlib.contextmanager
def dataset_helpers():
    """Importing PyBlaze (docs/migration.md) replaces torch's Dataset helpers: put ours back."""
    dataset = torch.utils.data.Dataset
    saved = {
        k: dataset.__dict__[k] for k in ("loader", "random_split", "split") if k in dataset.__dict__
    }
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(dataset, key, value)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs"}
    with dataset_helpers():
        exec(compile(PRELUDE, "prelude", "exec"), namespace)
        for line, marker, code in blocks(path):
            if marker is not None:
                assert re.fullmatch(r"skip \(.+\)", marker), f"{path.name}:{line}: {marker!r}"
                continue
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as e:
                pytest.fail(f"{path.name}, block at line {line}: {type(e).__name__}: {e}")


def test_the_block_finder_sees_markers():
    text = "x\n<!-- docs-test: skip (two machines) -->\n```python\na = 1\n```\n```python\nb\n```\n"
    path = pathlib.Path(__file__).with_name("_docs_probe.md")
    try:
        path.write_text(text)
        assert blocks(path) == [(4, "skip (two machines)", "a = 1\n"), (7, None, "b\n")]
    finally:
        path.unlink()
