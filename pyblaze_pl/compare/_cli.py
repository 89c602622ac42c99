"""``python -m pyblaze_pl.compare [--rtol R] [--atol A] [--seed S] [--cpu] SCRIPT [ARGS...]``.

Runs SCRIPT twice, each in a fresh process seeded alike: once with the installed PyBlaze, once
with ``import pyblaze...`` served by pyblaze_pl; then compares every History, evaluation,
prediction and trained model call by call and prints a report. Exit status: 0 when every value is
within tolerance, 1 when one differs, 2 when a run fails (or PyBlaze is missing).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import torch

import pyblaze_pl
from pyblaze_pl.compare._pyblaze import INSTALL
from pyblaze_pl.compare._report import FAILED, Run, render

__all__ = ["main"]

_USAGE = "python -m pyblaze_pl.compare [--rtol R] [--atol A] [--seed S] [--cpu] SCRIPT [ARGS...]"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the compare command and returns its exit status.

    Args:
        argv: The command line after ``python -m pyblaze_pl.compare`` (default ``sys.argv[1:]``).
            Options come before SCRIPT; everything after SCRIPT is the script's own ``sys.argv``.

    Example:
        >>> main(["--rtol", "1e-4", "train.py", "--epochs", "3"])  # doctest: +SKIP
        0
    """
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    split = _script_index(argv)
    options = parser.parse_args(argv[:split])
    if split == len(argv):
        parser.error(
            "Expected a Python script to run, e.g. `python -m pyblaze_pl.compare "
            "train.py`. Received none."
        )
    for name in ("rtol", "atol"):
        if not getattr(options, name) >= 0:
            parser.error(
                f"Expected --{name} to be a number >= 0. Received: {getattr(options, name)}."
            )
    script, args = argv[split], argv[split + 1 :]
    if not os.path.isfile(script):
        print(
            f"pyblaze_pl.compare: expected a Python script file. Received: {script!r}, which "
            f"is not a file (working directory {os.getcwd()}).",
            file=sys.stderr,
        )
        return FAILED
    version = _pyblaze_version()
    if version is None:
        print(
            f"pyblaze_pl.compare: PyBlaze is not installed for {sys.executable}, so there is "
            f"nothing to compare with. {INSTALL}",
            file=sys.stderr,
        )
        return FAILED
    labels = {"pyblaze": f"PyBlaze {version}", "pyblaze_pl": f"pyblaze_pl {pyblaze_pl.__version__}"}
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", str(options.seed))
    if options.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="pyblaze_pl_compare_") as folder:
        runs = tuple(
            _run(library, labels[library], i, script, args, options.seed, env, folder)
            for i, library in enumerate(("pyblaze", "pyblaze_pl"), start=1)
        )
    report, status = render(script, runs, options.rtol, options.atol, options.seed)
    print(f"===== report =====\n{report}", flush=True)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyblaze_pl.compare",
        usage=_USAGE,
        description="Runs a PyBlaze script with PyBlaze and with pyblaze_pl (import pyblaze... "
        "served by pyblaze_pl; the file is not changed) and compares every History, "
        "evaluate result, predict output and trained model, call by call. Exit status: 0 all "
        "within tolerance, 1 a value differs, 2 a run failed.",
    )
    parser.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (1e-5)")
    parser.add_argument("--atol", type=float, default=1e-8, help="absolute tolerance (1e-8)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of random, NumPy and torch in both runs (0)"
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="hide GPUs from both runs (CUDA_VISIBLE_DEVICES=''): the CPU gives reproducible "
        "numbers, and on several GPUs PyBlaze's DataParallel and pyblaze_pl's DDP see different "
        "batches",
    )
    return parser


def _script_index(argv: list[str]) -> int:
    """The index of SCRIPT: the first argument that is neither an option nor an option's value."""
    takes_value = {"--rtol", "--atol", "--seed"}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        i += 2 if argv[i] in takes_value else 1
    return min(i, len(argv))


def _pyblaze_version() -> str | None:
    try:
        if importlib.util.find_spec("pyblaze") is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version("pyblaze")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _run(
    library: str,
    label: str,
    number: int,
    script: str,
    args: list[str],
    seed: int,
    env: dict[str, str],
    folder: str,
) -> Run:
    result = os.path.join(folder, f"{library}.pt")
    command = [sys.executable, "-m", "pyblaze_pl.compare._child", library, script, result]
    print(f"===== run {number} of 2: {script} with {label} =====", flush=True)
    start = time.perf_counter()
    returncode = subprocess.run([*command, str(seed), *args], env=env, check=False).returncode
    seconds = time.perf_counter() - start
    if not os.path.exists(result):
        error = (
            f"The process ended with status {returncode} before writing its results (see its "
            f"output above)."
        )
        return Run(label, seconds, error=error)
    outcome = torch.load(result, weights_only=True)
    return Run(
        label,
        seconds,
        outcome["records"],
        outcome["error"],
        outcome.get("stage", "script"),
        outcome.get("seeded_splits", 0),
    )
