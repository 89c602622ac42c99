"""Folders the library saves into: temporary files of killed saves are removed by the next save
there (issue 23, point 4); folders that cannot be written are refused before training (point 2).
"""

from __future__ import annotations

import copy
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
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


# point 2: save folders that cannot be written are refused before training


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder where no file can be created: a read-only tmpfs under root (which ignores
    permission bits), else a folder without write permission."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if sys.platform != "linux":
        pytest.skip("Linux")
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder, errno.EACCES
        folder.chmod(0o700)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder, errno.EROFS
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_folder_that_cannot_be_written_is_named_with_the_cause(tmp_path, read_only_folder):
    folder, code = read_only_folder
    for target, created in [(folder, ""), (folder / "new" / "ckpt", " (it does not exist; ")]:
        with pytest.raises(OSError) as info:
            _io.check_writable_folder(target, "the save folder")
        assert info.value.errno == code
        assert str(info.value).startswith(
            f"[Errno {code}] Expected the save folder to be a folder that can be written. "
            f"Received: '{target}'{created}"
        )
        assert os.strerror(code) in str(info.value)


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "notes").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"Received: '.*notes', which is a file\."):
        _io.check_writable_folder(tmp_path / "notes", "the save folder")
    with pytest.raises(NotADirectoryError, match=r"'.*notes/ckpt', but '.*notes' above it is a"):
        _io.check_writable_folder(tmp_path / "notes" / "ckpt", "the save folder")


def test_a_writable_folder_passes_and_nothing_is_left_or_created(tmp_path):
    assert _io.check_writable_folder(tmp_path / "a" / "b", "x") == tmp_path / "a" / "b"
    _io.check_writable_folder(tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


def test_model_saver_refuses_a_folder_that_cannot_be_written_before_the_first_batch(
    net, read_only_folder
):
    folder, _code = read_only_folder
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(OSError, match=r"Expected ModelSaverCallback's directory to be a folder "):
        fit(net, callbacks=[xnn.ModelSaverCallback(folder / "saved")])
    for key, value in before.items():  # not a single step was taken
        assert torch.equal(net.state_dict()[key], value)


def test_checkpoint_folders_that_cannot_be_written_are_named(tmp_path, read_only_folder):
    import pytorch_lightning as pl

    from pyblaze_pl._lightning.checkpoint_io import check_checkpoint_folders

    folder, _code = read_only_folder
    callbacks = [ModelCheckpoint(dirpath=tmp_path / "fine"), ModelCheckpoint(dirpath=folder)]
    with pytest.raises(
        OSError, match=r"Expected ModelCheckpoint's dirpath \(Lightning callback 2\)"
    ):
        check_checkpoint_folders(pl, callbacks)
    remote = ModelCheckpoint()
    remote.dirpath = "s3://bucket/x"  # remote folders are not checked (fsspec writes them)
    check_checkpoint_folders(pl, [ModelCheckpoint(), remote, object()])


def test_fit_refuses_a_checkpoint_folder_that_cannot_be_written_before_training(net, tmp_path):
    (tmp_path / "notes").write_text("x")
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(NotADirectoryError, match=r"Expected ModelCheckpoint's dirpath"):
        fit(net, callbacks=[ModelCheckpoint(dirpath=tmp_path / "notes" / "ckpt")])
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value)
