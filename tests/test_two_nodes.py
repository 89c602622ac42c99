"""Two nodes simulated on one machine (issue 23, point 8): two torchrun launchers, one per "node"
(``--nnodes=2 --nproc-per-node=1``, localhost rendezvous, gloo), each running the same
``fit(..., trainer_kwargs={"num_nodes": 2})`` script. Both return the same global History, equal
to a single-process run with the same total batch size on the same data: unshuffled loaders,
which Lightning's DDP shuffles with a DistributedSampler (seed 0); the reference process draws the
same order (tests/scripts/two_nodes.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from two_nodes import run  # noqa: E402

DEADLINE_S = 240  # both launchers together; a failing or hanging node ends the run at once


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two_nodes(out: Path) -> list[str]:
    """Starts one torchrun launcher per node and waits for both; kills both as soon as one fails
    or the deadline passes. Returns each launcher's output."""
    port = free_port()
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    logs = [out / f"launcher{node}.log" for node in (0, 1)]
    launchers = []
    for node, log in enumerate(logs):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={node}",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            "--max-restarts=0",
            str(SCRIPTS / "two_nodes.py"),
            str(out),
        ]
        with open(log, "w") as sink:
            launchers.append(
                subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
            )
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            codes = [launcher.poll() for launcher in launchers]
            if all(code == 0 for code in codes) or any(code not in (None, 0) for code in codes):
                break
            time.sleep(0.2)
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
            launcher.wait(timeout=30)
    outputs = [log.read_text() for log in logs]
    codes = [launcher.returncode for launcher in launchers]
    assert codes == [0, 0], f"exit codes {codes} (deadline {DEADLINE_S} s)\n" + "\n".join(
        f"--- node {node} ---\n{text[-3000:]}" for node, text in enumerate(outputs)
    )
    return outputs


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_nodes")
    launch_two_nodes(out)
    return [json.loads((out / f"node{node}.json").read_text()) for node in (0, 1)], out


def test_both_nodes_train_together_and_return_the_same_global_history(two_nodes):
    (node0, node1), out = two_nodes
    assert node0["world"] == {"world_size": 2, "rank": 0, "node": 0}
    assert node1["world"] == {"world_size": 2, "rank": 1, "node": 1}
    assert node0["history"] == node1["history"]
    assert node0["evaluation"] == node1["evaluation"]
    for key, value in torch.load(out / "weights0.pt", weights_only=True).items():
        assert torch.equal(value, torch.load(out / "weights1.pt", weights_only=True)[key])


def test_two_nodes_equal_one_process_with_the_total_batch_size(two_nodes):
    (node0, _), out = two_nodes
    # 2 processes x batches of 8 (validation 5): one process with batches of 16 (validation 10),
    # in the training order Lightning's DistributedSampler draws
    model, history, evaluation = run(16, 10, reference=True, gpu=False)
    assert len(node0["history"]["micro_train_loss"]) == len(history["micro_train_loss"]) == 12
    assert node0["history"].keys() == history.keys()
    for key, values in history.items():
        assert node0["history"][key] == pytest.approx(values, abs=1e-6), key
    assert node0["evaluation"] == pytest.approx(evaluation, abs=1e-6)
    for key, value in torch.load(out / "weights0.pt", weights_only=True).items():
        torch.testing.assert_close(value, model.state_dict()[key], atol=1e-6, rtol=0)
