"""Exact resume after a killed process: shuffling from the global generator, dropout, numpy and
Python random draws, checkpoints at epoch ends, before an epoch's record and mid-epoch, DDP; and
checkpoints of another model refused before anything is loaded.

Each scenario trains ``tests/scripts/exact_resume.py`` once uninterrupted, once killed with
``os._exit`` after a checkpoint, then resumes the killed run from ``last.ckpt``: the History (every
batch loss, epoch loss and validation value) and the final weights must equal the uninterrupted
run's.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_dataset
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loops.fit_loop import _FitLoop
from torch import nn, optim
from torch.utils.data import DataLoader

import pyblaze_pl.nn as xnn

SCRIPTS = Path(__file__).parent / "scripts"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCRIPTS))
from exact_resume import Net  # noqa: E402

# pytorch-lightning 2.4 (before the restart rework of 2.5) does not validate at the end of an
# epoch resumed mid-way; the library warns (see compat.restarts_epochs).
SKIPS_VALIDATION = not hasattr(_FitLoop, "is_resuming")


def run_script(out, *args):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "exact_resume.py"), str(out), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )


def kill_and_resume(tmp_path, crash_after, *args):
    """The uninterrupted run's and the killed-then-resumed run's output folders."""
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    done = run_script(full, *args)
    assert done.returncode == 0, done.stderr
    died = run_script(crashed, "--crash-after-batches", crash_after, *args)
    assert died.returncode == 3, died.stderr
    assert not (crashed / "history.json").exists()
    resumed = run_script(crashed, "--resume", crashed / "ckpt" / "last.ckpt", *args)
    assert resumed.returncode == 0, resumed.stderr
    return full, crashed, resumed


def assert_same_run(full, crashed):
    expected = xnn.History.load(full / "history.json")
    history = xnn.History.load(crashed / "history.json")
    assert len(history) == len(expected) == 3
    assert history.keys == expected.keys
    for got, want in zip(history._metrics, expected._metrics, strict=True):
        assert len(got["micro_train_loss"]) == len(want["micro_train_loss"])
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key
    weights = torch.load(crashed / "weights.pt", weights_only=True)
    for key, value in torch.load(full / "weights.pt", weights_only=True).items():
        torch.testing.assert_close(weights[key], value, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("crash_after", "args"),
    [
        # 6 batches per epoch. Checkpoint at the end of epoch 1, killed in epoch 2.
        (9, []),
        # Validation every 2 epochs: the checkpoint is written when validation ends, before the
        # epoch is recorded; killed in epoch 3.
        (15, ["--val-every", 2]),
        # Mid-epoch: checkpoints every 4 steps (the last after batch 2 of epoch 2), a stateful
        # loader; killed after batch 4 of epoch 2.
        (10, ["--every-n-steps", 4, "--stateful"]),
    ],
    ids=["epoch-end", "before-the-record", "mid-epoch"],
)
def test_a_killed_run_resumes_exactly(tmp_path, crash_after, args):
    full, crashed, resumed = kill_and_resume(tmp_path, crash_after, *args)
    if SKIPS_VALIDATION and "--stateful" in args:
        assert "does not validate at the end of an epoch resumed mid-way" in resumed.stderr
        assert "pytorch-lightning (or lightning) >= 2.5" in resumed.stderr
        got, want = (xnn.History.load(out / "history.json") for out in (crashed, full))
        # Exact up to the resumed epoch's end (its batches included), which has no validation.
        assert got["micro_train_loss"][:12] == pytest.approx(want["micro_train_loss"][:12])
        assert math.isnan(got._metrics[1]["val_accuracy"])
        return
    assert "does not validate" not in resumed.stderr
    assert_same_run(full, crashed)
    # Not trivially equal: dropout and shuffling make every epoch differ.
    history = xnn.History.load(full / "history.json")
    assert len({round(loss, 6) for loss in history["micro_train_loss"]}) == 18


def test_a_killed_ddp_run_resumes_exactly(tmp_path):
    # 2 processes, 3 batches each per epoch: checkpoint after epoch 1, killed in epoch 2.
    full, crashed, _ = kill_and_resume(tmp_path, 5, "--ddp")
    assert_same_run(full, crashed)


@pytest.fixture(scope="module")
def mid_epoch_checkpoint(tmp_path_factory):
    """A checkpoint written after batch 2 of epoch 2 by a run with a plain DataLoader, which was
    then killed."""
    out = tmp_path_factory.mktemp("plain")
    died = run_script(out, "--crash-after-batches", 10, "--every-n-steps", 4)
    assert died.returncode == 3, died.stderr
    return out / "ckpt" / "last.ckpt"


class CountBatches(xnn.TrainingCallback):
    def __init__(self):
        self.counts = []

    def before_epoch(self, current, num_iterations):
        self.counts.append(0)

    def after_batch(self, train_loss):
        self.counts[-1] += 1


class StopAtTraining(xnn.TrainingCallback):
    def before_training(self, model, num_epochs):
        raise RuntimeError("training started")


def fit(model, ckpt_path, loader=None, callbacks=()):
    return model.fit(
        loader or DataLoader(make_dataset(48), batch_size=8, shuffle=True),
        epochs=3,
        optimizer=optim.Adam(model.parameters(), lr=0.05),
        loss=nn.CrossEntropyLoss(),
        callbacks=list(callbacks),
        gpu=False,
        ckpt_path=ckpt_path,
    )


def test_mid_epoch_resume_with_a_plain_loader_warns_before_training(mid_epoch_checkpoint):
    torch.manual_seed(0)
    with (
        pytest.warns(
            UserWarning, match=r"middle of epoch 2 \(after 2 batches\).*StatefulDataLoader"
        ),
        pytest.raises(RuntimeError, match="training started"),
    ):
        fit(Net(16), mid_epoch_checkpoint, callbacks=[StopAtTraining()])


def test_mid_epoch_resume_with_a_plain_loader_keeps_the_epoch_losses(mid_epoch_checkpoint):
    torch.manual_seed(0)
    counter = CountBatches()
    with pytest.warns(UserWarning, match="StatefulDataLoader"):
        history = fit(Net(16), mid_epoch_checkpoint, callbacks=[counter])
    # The 2 batch losses from before the checkpoint are in the History, then Lightning's (4; 5
    # on pytorch-lightning 2.4, which cannot tell how far a plain loader got).
    assert counter.counts == [5 if SKIPS_VALIDATION else 4, 6]
    assert [len(r["micro_train_loss"]) for r in history._metrics] == [6, 2 + counter.counts[0], 6]
    assert all(math.isfinite(v) for v in history["micro_train_loss"])


class Other(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):
        return self.linear(x)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Net(12),
            r"'model\.layers\.0\.weight' of shape \(16, 8\), where the model has "
            r"\(12, 8\)",
        ),
        (Other, r"has no 'model\.linear\.weight'"),
    ],
    ids=["shape", "names"],
)
def test_a_checkpoint_of_another_model_is_refused_before_loading(
    mid_epoch_checkpoint, make, message
):
    torch.manual_seed(0)
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        fit(model, mid_epoch_checkpoint, callbacks=[StopAtTraining()])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], atol=0, rtol=0)


def test_an_own_checkpoint_still_loads_in_process(tmp_path):
    # The pre-check reads the same names and shapes that Lightning loads.
    torch.manual_seed(0)
    model = Net(16)
    fit(model, None, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    history = model.fit(
        DataLoader(make_dataset(48), batch_size=8),
        epochs=4,
        optimizer=optim.Adam(model.parameters(), lr=0.05),
        loss=nn.CrossEntropyLoss(),
        gpu=False,
        ckpt_path=tmp_path / "last.ckpt",
    )
    assert len(history) == 4
