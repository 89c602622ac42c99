"""Folders the library saves into: temporary files of killed saves are removed by the next save
there (issue 23, point 4); folders that cannot be written are refused before training (point 2).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import make_dataset, make_loader
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn, optim

import pyblaze_pl.nn as xnn
from pyblaze_pl import _io


def fit(net, **kwargs):
    return net.fit(
        make_loader(make_dataset(32), 16),
        epochs=1,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        gpu=False,
        **kwargs,
    )


def plant(folder: Path, names: dict[str, bool]) -> None:
    """Creates files named ``names``; those mapped to True are made older than STALE_SECONDS."""
    folder.mkdir(parents=True, exist_ok=True)
    old = time.time() - _io.STALE_SECONDS - 10
    for name, stale in names.items():
        (folder / name).write_bytes(b"partial")
        if stale:
            os.utime(folder / name, (old, old))


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# what killed saves of other file names left, next to files that are not ours
KILLED_CHECKPOINT_SAVES = {
    ".epoch=0-step=2.ckpt.k2j4x9_a.tmp": True,  # ours, stale: removed
    ".epoch=5-step=12.ckpt.abcdefgh.tmp": True,  # ours, stale: removed
    ".epoch=9-step=20.ckpt.zzzzzzzz.tmp": False,  # ours, recent (a save still running): kept
    ".notes.txt.abcdefgh.tmp": True,  # not a checkpoint's: kept
    "epoch=1.ckpt.abcdefgh.tmp": True,  # not hidden, not our pattern: kept
}


def test_a_checkpoint_folder_loses_the_temporary_files_of_killed_saves(net, tmp_path):
    folder = tmp_path / "ckpt"
    plant(folder, KILLED_CHECKPOINT_SAVES)
    fit(net, callbacks=[ModelCheckpoint(dirpath=folder, save_last=True)])
    assert names(folder) == {
        ".epoch=9-step=20.ckpt.zzzzzzzz.tmp",
        ".notes.txt.abcdefgh.tmp",
        "epoch=1.ckpt.abcdefgh.tmp",
        "last.ckpt",
        "epoch=0-step=2.ckpt",
    }


KILLED_MODEL_SAVES = {
    ".model_epoch-3.pt.abcdefgh.tmp": True,  # ours, stale: removed
    ".model_epoch-3.json.abcdefgh.tmp": True,  # ours, stale: removed
    ".model_epoch-4.pt.zzzzzzzz.tmp": False,  # ours, recent: kept
    ".data.csv.abcdefgh.tmp": True,  # not ours: kept
}


def test_a_model_saver_folder_loses_the_temporary_files_of_killed_saves(net, tmp_path):
    folder = tmp_path / "saved"
    plant(folder, KILLED_MODEL_SAVES)
    fit(net, callbacks=[xnn.ModelSaverCallback(folder)])
    assert names(folder) == {
        ".model_epoch-4.pt.zzzzzzzz.tmp",
        ".data.csv.abcdefgh.tmp",
        "model_epoch-0.pt",
    }


def test_the_sweep_touches_only_our_names_with_the_given_suffixes(tmp_path):
    plant(tmp_path, {".a.ckpt.abcdefgh.tmp": True, ".a.pt.abcdefgh.tmp": True, ".ckpt.tmp": True})
    removed = _io.remove_stale_temps_in(tmp_path, (".ckpt",))
    assert [p.name for p in removed] == [".a.ckpt.abcdefgh.tmp"]
    assert names(tmp_path) == {".a.pt.abcdefgh.tmp", ".ckpt.tmp"}
    assert _io.remove_stale_temps_in(tmp_path / "missing", (".pt",)) == []
