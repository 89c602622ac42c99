"""DDP with 2 CPU processes (gloo), run as a script in a subprocess so that Lightning's launcher
never re-runs pytest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import Net, make_dataset
from torch import nn

import pyblaze_pl.nn.functional as X

SCRIPT = Path(__file__).parent / "scripts" / "ddp_run.py"


def run(out: Path, *args) -> tuple[dict, dict]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return ranks, done


def model_at(path: Path) -> Net:
    model = Net()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    ranks, done = run(out)
    return out, ranks, done


def test_every_rank_returns_the_same_global_history(ddp_run):
    _, (rank0, rank1), done = ddp_run
    assert rank0["history"] == rank1["history"]
    history = rank0["history"]
    assert len(history["train_loss"]) == 4
    # 96 samples, batches of 8, 2 processes: 6 steps per process and epoch.
    assert len(history["micro_train_loss"]) == 4 * 6
    # Printed once (rank 0), not once per process.
    assert done.stdout.count("Epoch 1/4:") == 1


def test_micro_train_loss_is_the_rank_average(ddp_run):
    _, (rank0, rank1), _ = ddp_run
    average = [
        (a + b) / 2 for a, b in zip(rank0["local_losses"], rank1["local_losses"], strict=True)
    ]
    history = rank0["history"]
    assert history["micro_train_loss"] == pytest.approx(average, abs=1e-6)
    for epoch in range(4):
        batch = history["micro_train_loss"][6 * epoch : 6 * epoch + 6]
        assert history["train_loss"][epoch] == pytest.approx(sum(batch) / 6, abs=1e-9)


def test_validation_metrics_cover_every_sample_exactly_once(ddp_run):
    out, (rank0, _), _ = ddp_run
    x, y = make_dataset(37, seed=2).tensors  # 37 samples: one rank gets a padded copy
    history = rank0["history"]
    for epoch in range(4):
        with torch.no_grad():
            y_pred = model_at(out / f"epoch{epoch + 1}.pt")(x)
        assert history["val_loss"][epoch] == pytest.approx(
            nn.functional.cross_entropy(y_pred, y).item(), abs=1e-6
        )
        assert history["val_accuracy"][epoch] == pytest.approx(X.accuracy(y_pred, y).item())
        assert history["val_f1"][epoch] == pytest.approx(X.f1_score(y_pred, y).item())


def test_evaluate_and_predict_are_global(ddp_run):
    out, (rank0, rank1), _ = ddp_run
    x, y = make_dataset(37, seed=2).tensors
    with torch.no_grad():
        y_pred = model_at(out / "final.pt")(x)
    assert rank0["evaluation"] == rank1["evaluation"]
    evaluation = rank0["evaluation"]
    assert evaluation["accuracy"] == pytest.approx(X.accuracy(y_pred, y).item())
    assert evaluation["loss"] == pytest.approx(nn.functional.cross_entropy(y_pred, y).item())
    # Every prediction, in data set order, on every rank.
    for rank in (0, 1):
        torch.testing.assert_close(torch.load(out / f"predictions{rank}.pt"), y_pred)


@pytest.fixture(scope="module")
def ddp_stop_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_stop")
    ranks, done = run(out, "--stop-on-rank-1-after-epoch", 2)
    return out, ranks, done


def test_a_stop_on_one_rank_stops_every_rank(ddp_stop_run):
    _, (rank0, rank1), done = ddp_stop_run
    assert "Training stopped: another process asked to." in done.stdout
    assert len(rank0["history"]["train_loss"]) == len(rank1["history"]["train_loss"]) == 2
    assert rank0["history"] == rank1["history"]


@pytest.mark.parametrize("fixture", ["ddp_run", "ddp_stop_run"])
def test_every_process_destroys_its_process_group_before_the_interpreter_shuts_down(
    fixture, request
):
    # A gloo thread alive while the interpreter shuts down may free a tensor there and abort the
    # process ("terminate called without an active exception", exit code -6): only now and then,
    # so the state at exit is checked instead. Rank 1's exit code reaches nobody, hence its output.
    out, _, done = request.getfixturevalue(fixture)
    assert "terminate called" not in done.stderr
    for rank in (0, 1):
        state = json.loads((out / f"exit{rank}.json").read_text())
        assert state == {"process_group": False, "gloo_threads": []}
