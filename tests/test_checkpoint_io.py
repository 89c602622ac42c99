"""Checkpoints written during fit are atomic on every filesystem; ckpt_path is checked before
anything runs (issue 16, section 3)."""

from __future__ import annotations

import copy
import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_dataset, make_loader
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.plugins import TorchCheckpointIO
from torch import nn, optim

SCRIPTS = Path(__file__).parent / "scripts"
KILLS = 10


def fit(net, tmp_path, epochs=1, **kwargs):
    return net.fit(
        make_loader(make_dataset(64), 16),
        epochs=epochs,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        gpu=False,
        **kwargs,
    )


class Spy(Callback):
    def on_train_start(self, trainer, pl_module):
        self.checkpoint_io = trainer.strategy.checkpoint_io


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_fit_writes_checkpoints_through_the_atomic_plugin(net, tmp_path):
    spy = Spy()
    fit(net, tmp_path, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True), spy])
    assert type(spy.checkpoint_io).__name__ == "AtomicCheckpointIO"
    assert isinstance(spy.checkpoint_io, TorchCheckpointIO)
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0 and "state_dict" in checkpoint
    assert temporary_files(tmp_path) == []


def test_a_users_checkpoint_io_is_kept(net, tmp_path):
    spy, mine = Spy(), TorchCheckpointIO()
    fit(net, tmp_path, callbacks=[spy], trainer_kwargs={"plugins": [mine]})
    assert spy.checkpoint_io is mine


def test_full_disk_leaves_the_previous_checkpoint(net, tmp_path, monkeypatch):
    fit(net, tmp_path, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    previous = (tmp_path / "last.ckpt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, f)  # some bytes reach the file, then ENOSPC
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError) as info:
        fit(net, tmp_path, epochs=2, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    assert info.value.errno == errno.ENOSPC
    assert f"Could not write '{tmp_path}" in str(info.value)  # names the file and the cause
    assert "No space left" in str(info.value)
    monkeypatch.undo()
    assert (tmp_path / "last.ckpt").read_bytes() == previous  # untouched, still loadable
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 0
    assert temporary_files(tmp_path) == []


@pytest.fixture(params=["same-filesystem", "tmpfs"])
def checkpoint_folder(request, tmp_path):
    """A folder on the test's filesystem, or on a tmpfs mounted for the test: another filesystem
    than the temporary folder, where Lightning's default writer copies instead of renaming."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if request.param == "same-filesystem":
        yield folder
        return
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_kill_9_during_saves_never_leaves_an_unreadable_checkpoint(checkpoint_folder, tmp_path):
    """SIGKILL while a checkpoint is being written (its temporary file exists), KILLS times: every
    time, last.ckpt is complete and loads; nothing is staged in the temporary folder."""
    staging = tmp_path / "staging"
    staging.mkdir()
    env = {**os.environ, "TMPDIR": str(staging), "PYTHONPATH": os.getcwd()}
    mid_save = 0
    for _ in range(KILLS):
        process = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "checkpoint_loop.py"), str(checkpoint_folder)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                names = os.listdir(checkpoint_folder)
                if "last.ckpt" in names and any(n.startswith(".last.ckpt.") for n in names):
                    break
                if process.poll() is not None:
                    pytest.fail(f"the training script ended with {process.returncode}")
            else:
                pytest.fail("no checkpoint was being written within 120 s")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        mid_save += any(n.startswith(".last.ckpt.") for n in os.listdir(checkpoint_folder))
        checkpoint = torch.load(checkpoint_folder / "last.ckpt", weights_only=True)
        assert "state_dict" in checkpoint and "loops" in checkpoint
    assert mid_save >= 1  # at least one kill landed while a checkpoint was being written
    assert list(staging.iterdir()) == []  # nothing staged in the temporary folder


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > evil_ran",))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "weights",
            r"holds a plain state_dict \(weights only: 4 tensors such as 'layers\.0\.weight'",
        ),
        ("truncated", r"which is a truncated zip archive \(torch\.save's format\) of \d+ bytes"),
        ("malicious", r"loading with weights_only=True refuses: a pickle that could run code"),
        ("other dict", r"without the keys of a Lightning checkpoint .*Its keys: 'model'"),
    ],
)
def test_ckpt_path_that_is_not_a_lightning_checkpoint_is_refused(net, tmp_path, kind, expected):
    before = copy.deepcopy(net.state_dict())
    path = tmp_path / f"{kind.replace(' ', '_')}.ckpt"
    if kind == "weights":
        torch.save(net.state_dict(), path)
    elif kind == "truncated":
        fit(net, tmp_path, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
        before = copy.deepcopy(net.state_dict())
        data = (tmp_path / "last.ckpt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "malicious":
        path.write_bytes(pickle.dumps({"state_dict": Evil(), "epoch": 0}))
    else:
        torch.save({"model": net.state_dict(), "step": 3}, path)
    os.chdir(tmp_path)
    with pytest.raises(ValueError, match=expected) as info:
        fit(net, tmp_path, ckpt_path=path)
    assert f"Received: '{path}'" in str(info.value)
    assert not (tmp_path / "evil_ran").exists()
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value)
