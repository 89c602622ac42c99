"""The pyblaze_pl benchmark suite (``make bench``): prints tables and writes benchmarks/results.md.

Contenders: a hand-written PyTorch loop (the reference), a plain Lightning Trainer (progress bar,
logger, checkpointing and summary off), pyblaze_pl ``fit``/``evaluate`` with default settings, and
the original PyBlaze (PyPI ``pyblaze`` 2.x) when it is installed.

Workloads:
    a       the PyBlaze tutorial CNN, batch 256, 1 epoch on 6,144 random 3x32x32 images
    b       a 16-32-4 MLP, batch 32, 2 epochs on 8,192 samples (512 steps)
    c       ``evaluate`` with accuracy and F1 on 1x (4,096 images) and 10x that: peak memory
    import  import time of each framework and time to the first training step

Every round starts each contender in a fresh process (benchmarks/contenders.py or
benchmarks/first_step.py), in an order rotated per round; the first round is dropped; the
median of the per-round ratios to the hand-written loop of the same round is reported with its
spread. Rounds are added (up to --max-rounds) while a spread is wider than --max-spread.

Usage:
    python benchmarks/run.py [--rounds N] [--workloads a,b,c,import] [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONTENDERS = ("hand", "lightning", "pyblaze_pl", "pyblaze_pl_trainer", "pyblaze", "fabric")
# Optional diagnostic contender (--contenders ...,hand_pl): the hand-written loop in a process
# that imported pytorch_lightning (which sets PYTORCH_NVML_BASED_CUDA_CHECK=1).
TRAIN_CONTENDERS = (*CONTENDERS, "hand_pl")
LABELS = {
    "hand": "hand-written loop",
    "lightning": "plain Lightning Trainer",
    "pyblaze_pl": "pyblaze_pl `fit` (runner='auto': on Lightning Fabric)",
    "pyblaze_pl_trainer": "pyblaze_pl `fit`, runner='trainer'",
    "pyblaze": "original PyBlaze",
    "hand_pl": "hand-written loop, `pytorch_lightning` imported",
    "fabric": "a plain loop on Lightning Fabric (reference)",
}
EVAL_CONTENDERS = ("hand", "pyblaze_pl", "pyblaze_pl_trainer", "pyblaze")
MODULES = {
    "hand": "torch",
    "lightning": "pytorch_lightning",
    "pyblaze_pl": "pyblaze_pl.nn",
    "pyblaze_pl_trainer": "pyblaze_pl.nn",
    "pyblaze": "pyblaze.nn",
}
MARKER = "BENCH-JSON "
GPU_RESULTS = HERE / "results_gpu.md"
QUICK_JOBS = {"a": ("a",), "b": ("b",), "c": ("c1", "c10")}

# Thresholds of the targets.
TARGET_A_PL = 1.05  # pyblaze_pl (both runners) / plain Lightning, the CNN
TARGET_B_HAND = 1.25  # pyblaze_pl / hand-written loop, the MLP
TARGET_B_PYBLAZE = 1.10  # pyblaze_pl / original PyBlaze, the MLP
TARGET_C = 1.05  # peak memory of evaluate, 10x / 1x
TARGET_IMPORT = 1.10  # import pyblaze_pl.nn / import pytorch_lightning


# --------------------------------------------------------------------------------------------
# running processes


# glibc keeps freed blocks below its (dynamic) mmap threshold in the heap, so RSS would not fall
# when tensors are freed and the peak would blur. A fixed threshold makes every allocation over
# 128 KiB its own mmap, returned to the OS when freed: RSS then follows live tensor memory.
# glibc reads these at start-up, so they are set for every benchmark process.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def thread_env(threads: int) -> dict[str, str]:
    """Environment of a benchmark process: fixed OpenMP/MKL threads, the malloc settings."""
    env = dict(os.environ)
    env.update(MALLOC_ENV)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    return env


def run_child(argv: list[str], env: dict[str, str], timeout: float = 600) -> list[dict]:
    """Runs one benchmark process and returns its JSON lines (an error record if it failed)."""
    proc = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout
    )
    records = [
        json.loads(line[len(MARKER) :])
        for line in proc.stdout.splitlines()
        if line.startswith(MARKER)
    ]
    if proc.returncode != 0 or not records:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return [{"error": f"exit {proc.returncode}: " + " | ".join(tail)}]
    return records


def rotated(items: Sequence[str], r: int) -> list[str]:
    r %= len(items)
    return list(items[r:]) + list(items[:r])


# --------------------------------------------------------------------------------------------
# statistics


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def relative_iqr(values: Sequence[float]) -> float:
    lo, hi = quartiles(values)
    return (hi - lo) / statistics.median(values)


def paired_ratios(rounds: list[dict[str, dict]], num: str, den: str, key: str) -> list[float]:
    """``num / den`` of every kept round where both ran (same round: same machine state)."""
    return [
        r[num][key] / r[den][key]
        for r in rounds
        if num in r and den in r and key in r[num] and key in r[den]
    ]


def fmt_spread(values: Sequence[float]) -> tuple[str, str]:
    lo, hi = quartiles(values)
    return f"{lo:.3f}-{hi:.3f}", f"{min(values):.3f}-{max(values):.3f}"


# --------------------------------------------------------------------------------------------
# the workloads


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = thread_env(args.threads)
        self.skipped: dict[str, str] = {}
        self.errors: list[str] = []
        self.bundled: dict[str, dict] = {}
        self.log = print if not args.silent else (lambda *a, **k: None)

    def job(self, contender: str, job: str) -> dict:
        """One job's record: a fresh process, or (--quick) the record of the one process per
        contender that ran all jobs."""
        if self.args.quick:
            if contender not in self.bundled:
                jobs = [j for w in self.args.workloads for j in QUICK_JOBS.get(w, ())]
                if contender not in EVAL_CONTENDERS:
                    jobs = [j for j in jobs if not j.startswith("c")]
                records = run_child(self.contender_argv(contender, ",".join(jobs)), self.env)
                self.bundled[contender] = {r.get("job"): r for r in records}
            records = self.bundled[contender]
            return records.get(job) or records.get(None) or {"error": f"no record for {job}"}
        return run_child(self.contender_argv(contender, job), self.env)[0]

    def contender_argv(self, contender: str, jobs: str) -> list[str]:
        return [
            str(HERE / "contenders.py"),
            contender,
            jobs,
            f"--threads={self.args.threads}",
            f"--seed={self.args.seed}",
            f"--scale={self.args.scale}",
        ]

    def contenders(self, pool: Sequence[str]) -> list[str]:
        return [c for c in pool if c in self.args.contenders and c not in self.skipped]

    def note_record(self, contender: str, record: dict, what: str) -> bool:
        if "skipped" in record and record.get("job") is None:
            self.skipped[contender] = record["skipped"]
            self.log(f"  {contender}: skipped ({record['skipped']})")
            return False
        if "error" in record:
            self.errors.append(f"{what} {contender}: {record['error']}")
            self.log(f"  {contender}: FAILED {record['error']}")
            return False
        return "skipped" not in record

    def repeat(
        self,
        name: str,
        pool: Sequence[str],
        one_round: Callable[[int, list[str]], dict[str, dict]],
        spread_keys: Sequence[tuple[str, str, str]],
        rounds: int,
        drop_first: bool = True,
    ) -> tuple[list[dict[str, dict]], int]:
        """Runs the dropped first round, ``rounds`` kept rounds, and more (up to
        ``--max-rounds``) while a paired ratio's relative IQR exceeds ``--max-spread``."""
        args = self.args
        kept: list[dict[str, dict]] = []
        drop_first = drop_first and not args.quick
        total = int(drop_first) + rounds
        r = 0
        while True:
            order = rotated(self.contenders(pool), r)
            start = time.monotonic()
            results = one_round(r, order)
            dropped = r == 0 and drop_first
            times = ", ".join(f"{c} {v['seconds']:.3f}s" for c, v in results.items())
            self.log(
                f"[{name}] round {r + 1}{' (dropped)' if dropped else ''}: {times}"
                f"  ({time.monotonic() - start:.0f}s)"
            )
            if not dropped:
                kept.append(results)
            r += 1
            if r < total:
                continue
            wide = [
                f"{num}/{den}"
                for num, den, key in spread_keys
                if len(vals := paired_ratios(kept, num, den, key)) >= 2
                and relative_iqr(vals) > args.max_spread
            ]
            if not wide or len(kept) >= args.max_rounds or args.quick:
                return kept, len(kept)
            self.log(f"[{name}] spread wide for {wide}: one more round")

    # a, b: training time ----------------------------------------------------------------
    def train_workload(self, job: str) -> dict:
        def one_round(r: int, order: list[str]) -> dict[str, dict]:
            out = {}
            for contender in order:
                record = self.job(contender, job)
                if self.note_record(contender, record, f"workload {job}"):
                    out[contender] = record
            return out

        # Rounds are added for the spread of the ratios the targets are about.
        keys = [("pyblaze_pl", "hand", "seconds"), ("pyblaze_pl", "lightning", "seconds")]
        kept, n = self.repeat(job, TRAIN_CONTENDERS, one_round, keys, self.args.rounds)
        return {"rounds": kept, "n": n, "dropped": not self.args.quick}

    # c: evaluate memory --------------------------------------------------------------------
    def eval_workload(self) -> dict:
        def one_round(r: int, order: list[str]) -> dict[str, dict]:
            out = {}
            for contender in order:
                merged = {}
                for job in ("c1", "c10"):
                    record = self.job(contender, job)
                    if not self.note_record(contender, record, f"workload {job}"):
                        break
                    merged[job] = record
                else:
                    out[contender] = {
                        "seconds": merged["c10"]["seconds"],
                        "seconds_1x": merged["c1"]["seconds"],
                        "peak_1x": merged["c1"]["peak_delta_mb"],
                        "peak_10x": merged["c10"]["peak_delta_mb"],
                        "peak_ratio": merged["c10"]["peak_delta_mb"]
                        / merged["c1"]["peak_delta_mb"],
                        "accuracy": merged["c10"]["accuracy"],
                        "method": merged["c10"]["peak_method"],
                        "samples": (merged["c1"]["samples"], merged["c10"]["samples"]),
                        "batch_size": merged["c1"]["batch_size"],
                    }
            return out

        # Peak memory does not depend on warm caches: no round is dropped (time is secondary).
        kept, n = self.repeat(
            "c", EVAL_CONTENDERS, one_round, [], self.args.eval_rounds, drop_first=False
        )
        return {"rounds": kept, "n": n, "dropped": False}

    # import and time to the first step -----------------------------------------------------
    def import_workload(self) -> dict:
        def one_round(r: int, order: list[str]) -> dict[str, dict]:
            out = {}
            for contender in order:
                argv = [str(HERE / "first_step.py"), contender, f"--threads={self.args.threads}"]
                launched = time.time()
                record = run_child(argv, self.env)[0]
                if self.note_record(contender, record, "import"):
                    out[contender] = {
                        "seconds": record["imported"] - launched,
                        "first_step": record["first_step"] - launched,
                    }
            return out

        keys = [("pyblaze_pl", "lightning", "seconds")]
        importers = tuple(c for c in CONTENDERS if c in MODULES)
        kept, n = self.repeat("import", importers, one_round, keys, self.args.rounds)
        return {
            "rounds": kept,
            "n": n,
            "dropped": not self.args.quick,
            "breakdown": self.import_breakdown(),
        }

    def import_breakdown(self) -> list[tuple[str, float]]:
        """What ``import pyblaze_pl.nn`` adds on top of an already imported Lightning
        (``python -X importtime``, one process; top-level modules over 10 ms)."""
        if self.args.quick or "pyblaze_pl" not in self.args.contenders:
            return []
        code = "import pytorch_lightning, sys; print('MARK', file=sys.stderr); import pyblaze_pl.nn"
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = proc.stderr.split("MARK\n", 1)[-1].splitlines()
        rows = []
        for line in lines:
            if not line.startswith("import time:") or "|" not in line:
                continue
            _, cumulative, name = (part.strip() for part in line[12:].split("|"))
            raw = line.split("|")[2]
            depth = (len(raw) - len(raw.lstrip())) // 2
            if cumulative.isdigit() and depth <= 2 and int(cumulative) >= 10_000:
                rows.append((name, int(cumulative) / 1e6))
        return rows


# --------------------------------------------------------------------------------------------
# the report


def machine_facts(args: argparse.Namespace) -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; load average at the end {load} "
        "(the machine is shared)",
        f"- torch threads: {args.threads} (`torch.set_num_threads`, one inter-op thread, "
        f"`OMP_NUM_THREADS={args.threads}`); CPU only; DataLoader without worker processes",
        f"- Python {platform.python_version()}, torch {version('torch')}, pytorch-lightning "
        f"{version('pytorch-lightning')}, torchmetrics {version('torchmetrics')}, pyblaze_pl "
        f"{version('pyblaze_pl')}, pyblaze {version('pyblaze')}",
        f"- Seed {args.seed}; scale `{args.scale}`",
    ]


def pyblaze_note(skipped: str | None) -> list[str]:
    try:
        version = metadata.version("pyblaze")
    except metadata.PackageNotFoundError:
        return [
            "- The original PyBlaze is not installed (`pip install --no-deps pyblaze==2.3.2`): "
            "its rows are marked skipped."
        ]
    if skipped is not None:
        return [f"- PyBlaze {version} is installed but `import pyblaze.nn` fails: {skipped}."]
    return [
        f"- PyBlaze {version} runs unchanged on this torch (no compatibility shim); its "
        "`Estimator` has no default engine, so the benchmark calls `MLEEngine(model).train(...)` "
        "as `Estimator.fit` would."
    ]


def kept_rounds(args: argparse.Namespace, result: dict) -> str:
    if args.quick:
        return f"{result['n']} round (--quick: nothing dropped, numbers not meaningful)"
    if not result["dropped"]:
        return f"{result['n']} rounds (none dropped: peak memory does not depend on warm caches)"
    return f"{result['n']} kept rounds (the first round dropped)"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


class Report:
    def __init__(self, args: argparse.Namespace, suite: Suite) -> None:
        self.args = args
        self.suite = suite
        self.lines: list[str] = []
        self.targets: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: Sequence[str], rows: list[Sequence[str]]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        self.add(*("| " + " | ".join(row) + " |" for row in rows))
        self.add("")

    def skipped_rows(self, pool: Sequence[str], width: int) -> list[list[str]]:
        return [
            [LABELS[c], f"skipped: {self.suite.skipped[c]}"] + [""] * (width - 2)
            for c in pool
            if c in self.suite.skipped
        ]

    def train(self, job: str, result: dict, title: str) -> None:
        rounds = result["rounds"]
        self.add(f"## Workload ({job}): {title}", "")
        if not rounds or "hand" not in rounds[0]:
            self.add("No result (the hand-written loop did not run).", "")
            return
        first = rounds[0]["hand"]
        self.add(
            f"{first['samples']:,} samples in {first['steps']} steps; "
            f"{kept_rounds(self.args, result)}. "
            "Ratio: the contender's time over the hand-written loop's "
            "time in the same round; median, interquartile range and min-max over rounds.",
            "",
        )
        header = [
            "contender",
            "median s",
            "ratio to hand",
            "IQR of ratio",
            "min-max of ratio",
            "ratio to Lightning",
            "fixed cost / fit (ms)",
            "extra per step (ms)",
            "same weights",
        ]
        rows = []
        ratios: dict[str, float] = {}
        vs_pl: dict[str, float] = {}
        vs_pyblaze: dict[str, float] = {}
        for c in TRAIN_CONTENDERS:
            runs = [r[c] for r in rounds if c in r]
            if not runs:
                continue
            seconds = statistics.median(x["seconds"] for x in runs)
            fixed = statistics.median(x["fixed_seconds"] for x in runs) * 1000
            ratio_list = paired_ratios(rounds, c, "hand", "seconds")
            ratios[c] = statistics.median(ratio_list)
            iqr, span = fmt_spread(ratio_list)
            pl_list = paired_ratios(rounds, c, "lightning", "seconds")
            vs_pl[c] = statistics.median(pl_list) if pl_list else float("nan")
            pyblaze_list = paired_ratios(rounds, c, "pyblaze", "seconds")
            vs_pyblaze[c] = statistics.median(pyblaze_list) if pyblaze_list else float("nan")
            steps = runs[0]["steps"]
            extra = statistics.median(
                ((r[c]["seconds"] - r[c]["fixed_seconds"]) - (h["seconds"] - h["fixed_seconds"]))
                / max(steps - 1, 1)
                * 1000
                for r in rounds
                if c in r and (h := r.get("hand"))
            )
            same = all(x["checksum"] == first["checksum"] for x in runs)
            rows.append(
                [
                    LABELS[c],
                    f"{seconds:.3f}",
                    f"{ratios[c]:.3f}",
                    iqr,
                    span,
                    "" if c == "lightning" or not pl_list else f"{vs_pl[c]:.3f}",
                    f"{fixed:.1f}",
                    "—" if c == "hand" else f"{extra:+.3f}",
                    "yes" if same else "NO",
                ]
            )
        rows += self.skipped_rows(TRAIN_CONTENDERS, len(header))
        self.table(header, rows)
        self.add(
            "*fixed cost / fit*: a second, timed call of the contender on a one-batch loader in "
            "the same process (after an untimed warm-up call): set-up, one step and tear-down. "
            "*extra per step*: ((time - fixed cost) - the same for the hand-written loop) / "
            "(steps - 1). *same weights*: the trained weights' checksum equals the hand-written "
            "loop's (same seed, data order, Adam).",
            "",
        )
        if job == "b":
            self.add(
                "Part of the per-step cost of every Lightning-based contender is not in the loop: "
                "`import pytorch_lightning` sets `PYTORCH_NVML_BASED_CUDA_CHECK=1` for the "
                "process (`lightning_fabric/__init__.py`), and then, while CUDA is not "
                "initialised, every `torch.cuda.is_available()` asks NVML again (about 35 µs "
                "instead of 1 µs here); Adam's `step` asks every step. pyblaze_pl lifts the "
                "variable for the duration of its runs when no GPU is visible "
                "(`pyblaze_pl/nn/engine/_devices.py::fast_cuda_checks`); the plain Lightning "
                "contender pays it. `--contenders hand,hand_pl,lightning,pyblaze_pl` adds the "
                "hand-written loop after that import (`hand_pl`) to measure it; `fabric` adds a "
                "prototype of pyblaze_pl's loop on Lightning Fabric instead of the Trainer.",
                "",
            )
        for c in ("pyblaze_pl", "pyblaze_pl_trainer"):
            if c not in ratios:
                continue
            name = LABELS[c]
            if job == "a":
                self.targets.append(
                    f"- CNN: {name} ≤ {TARGET_A_PL}x plain Lightning: {vs_pl[c]:.3f}x → "
                    f"{verdict(vs_pl[c] <= TARGET_A_PL)}"
                )
            if job == "b" and c == "pyblaze_pl":
                self.targets.append(
                    f"- MLP: {name} ≤ {TARGET_B_HAND}x the hand-written loop: {ratios[c]:.3f}x → "
                    f"{verdict(ratios[c] <= TARGET_B_HAND)}"
                )
                self.targets.append(
                    f"- MLP: {name} ≤ {TARGET_B_PYBLAZE}x the original PyBlaze: "
                    f"{vs_pyblaze[c]:.3f}x → {verdict(vs_pyblaze[c] <= TARGET_B_PYBLAZE)}"
                )

    def evaluate(self, result: dict) -> None:
        rounds = result["rounds"]
        self.add("## Workload (c): `evaluate` on 1x and 10x a validation set (peak memory)", "")
        runs_h = [r["hand"] for r in rounds if "hand" in r]
        samples = runs_h[0]["samples"] if runs_h else ("?", "?")
        method = runs_h[0]["method"] if runs_h else "?"
        batch = runs_h[0]["batch_size"] if runs_h else "?"
        self.add(
            f"The tutorial CNN (untrained) evaluated with `metrics={{'accuracy': X.accuracy, "
            f"'f1': X.f1_score}}` (PyBlaze: its own `accuracy`/`f1_score`; hand-written: "
            f"streaming counts) on {samples[0]:,} and {samples[1]:,} images, batch {batch}. "
            f"{kept_rounds(self.args, result)}; 1x and 10x each in a fresh process.",
            "",
            f"Peak memory ({method}): after an untimed warm-up `evaluate` on one batch, the "
            "process's peak RSS mark (VmHWM) is reset (`/proc/self/clear_refs`), and *Δ peak* is "
            "VmHWM after the call minus VmRSS before it: every tensor the call allocates, "
            "transient (batch, activations) or kept (outputs, metric states). glibc is run with "
            "a fixed `MALLOC_MMAP_THRESHOLD_=131072`, so every tensor over 128 KiB is its own "
            "mmap returned to the OS when freed and RSS follows live tensor memory. The images "
            f"come from a fixed pool of {batch}, so the data set's own memory is the same at 1x "
            "and 10x.",
            "",
        )
        header = [
            "contender",
            "Δ peak 1x (MiB)",
            "Δ peak 10x (MiB)",
            "ratio 10x/1x",
            "min-max of ratio",
            "kept by 10x (MiB)",
            "time 10x (s)",
            "time ratio to hand",
            "same accuracy",
        ]
        rows = []
        for c in EVAL_CONTENDERS:
            runs = [r[c] for r in rounds if c in r]
            if not runs:
                continue
            ratio = statistics.median(x["peak_ratio"] for x in runs)
            t_ratio = paired_ratios(rounds, c, "hand", "seconds")
            same = runs_h and all(x["accuracy"] == runs_h[0]["accuracy"] for x in runs)
            rows.append(
                [
                    LABELS[c].replace("`fit`", "`evaluate`"),
                    f"{statistics.median(x['peak_1x'] for x in runs):.1f}",
                    f"{statistics.median(x['peak_10x'] for x in runs):.1f}",
                    f"{ratio:.3f}",
                    f"{min(x['peak_ratio'] for x in runs):.3f}-"
                    f"{max(x['peak_ratio'] for x in runs):.3f}",
                    f"{statistics.median(x['peak_10x'] - x['peak_1x'] for x in runs):+.1f}",
                    f"{statistics.median(x['seconds'] for x in runs):.2f}",
                    f"{statistics.median(t_ratio):.3f}" if t_ratio else "",
                    "yes" if same else "NO",
                ]
            )
            if c == "pyblaze_pl":
                self.targets.append(
                    f"- peak memory of pyblaze_pl `evaluate` grows < 5% from 1x to 10x: "
                    f"{(ratio - 1) * 100:+.1f}% → {verdict(ratio < TARGET_C)}"
                )
        rows += self.skipped_rows(EVAL_CONTENDERS, len(header))
        self.table(header, rows)
        self.add(
            "*kept by 10x*: Δ peak 10x - Δ peak 1x, memory that grows with the data "
            "(PyBlaze concatenates all outputs and targets before computing its metrics; "
            "pyblaze_pl and the hand-written loop keep counts only). Most of Δ peak is one "
            f"batch of {batch} images and its activations.",
            "",
        )

    def imports(self, result: dict) -> None:
        rounds = result["rounds"]
        self.add("## Import time and time to the first training step", "")
        self.add(
            f"Fresh processes, alternating; {kept_rounds(self.args, result)}. *import*: "
            "wall time from starting the process to the end of `import <module>` (the "
            "interpreter's start-up included, the same for all). *first step*: from starting the "
            "process to the end of the first optimizer step (import, MLP and data, framework "
            "set-up, one batch of 32).",
            "",
        )
        header = [
            "contender",
            "module",
            "import (s)",
            "ratio to `pytorch_lightning`",
            "IQR of ratio",
            "first step (s)",
            "first step ratio to Lightning",
        ]
        rows = []
        for c in CONTENDERS:
            runs = [r[c] for r in rounds if c in r]
            if not runs:
                continue
            ratio = paired_ratios(rounds, c, "lightning", "seconds")
            first = paired_ratios(rounds, c, "lightning", "first_step")
            rows.append(
                [
                    LABELS[c].replace(" `fit`", ""),
                    f"`{MODULES[c]}`",
                    f"{statistics.median(x['seconds'] for x in runs):.3f}",
                    f"{statistics.median(ratio):.3f}" if ratio else "",
                    fmt_spread(ratio)[0] if ratio else "",
                    f"{statistics.median(x['first_step'] for x in runs):.3f}",
                    f"{statistics.median(first):.3f}" if first else "",
                ]
            )
            if c == "pyblaze_pl" and ratio:
                med = statistics.median(ratio)
                self.targets.append(
                    f"- `import pyblaze_pl.nn` within 10% of `import pytorch_lightning`: "
                    f"{med:.3f}x → {verdict(med <= TARGET_IMPORT)}"
                )
                vs_pyblaze = paired_ratios(rounds, c, "pyblaze", "first_step")
                if vs_pyblaze:
                    med_first = statistics.median(vs_pyblaze)
                    self.targets.append(
                        f"- time to the first step, pyblaze_pl ≤ the original PyBlaze's: "
                        f"{med_first:.3f}x → {verdict(med_first <= 1.0)}"
                    )
        rows += self.skipped_rows(CONTENDERS, len(header))
        self.table(header, rows)
        if result.get("breakdown"):
            self.add(
                "What `import pyblaze_pl.nn` adds after `import pytorch_lightning` "
                "(`python -X importtime`, one process, cumulative, modules ≥ 10 ms):",
                "",
            )
            self.table(
                ["module", "cumulative (s)"],
                [[f"`{name}`", f"{secs:.3f}"] for name, secs in result["breakdown"]],
            )

    def render(self, elapsed: float) -> str:
        args = self.args
        head = [
            "# pyblaze_pl benchmarks",
            "",
            "Generated by `make bench` (`benchmarks/run.py"
            + (" " + " ".join(args.argv) if args.argv else "")
            + f"`) in {elapsed / 60:.1f} min. Contenders: "
            "a hand-written PyTorch loop, a plain Lightning `Trainer` (`logger=False, "
            "enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False`), "
            "pyblaze_pl `model.fit(loader, epochs=..., optimizer=..., loss=..., gpu=False)` with "
            "default settings, and the original PyBlaze (`pyblaze` from PyPI, "
            "`MLEEngine(model).train(...)`). Same seed, data, data order and Adam optimizer for "
            "all; only the training (or evaluation) call is timed, not imports or data creation.",
            "",
            *machine_facts(args),
            *pyblaze_note(self.suite.skipped.get("pyblaze")),
            "",
            "## Targets",
            "",
            *(self.targets or ["- (no target measured)"]),
            "",
        ]
        if self.suite.errors:
            head += ["## Errors", "", *(f"- {e}" for e in self.suite.errors), ""]
        text = "\n".join(head + self.lines)
        if GPU_RESULTS.exists():
            text += "\n" + GPU_RESULTS.read_text()
        else:
            text += (
                "\n## GPU\n\nNot measured here (no CUDA device). On a machine with one, run "
                "`python benchmarks/gpu_check.py`: it writes `benchmarks/results_gpu.md`, which "
                "the next `make bench` includes here.\n"
            )
        return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="kept rounds (default 7)")
    parser.add_argument(
        "--max-rounds", type=int, default=10, help="most kept rounds when a spread is wide"
    )
    parser.add_argument(
        "--max-spread",
        type=float,
        default=0.10,
        help="add rounds while the IQR / median of a pyblaze_pl ratio is above this (0.10)",
    )
    parser.add_argument("--eval-rounds", type=int, default=3, help="kept rounds of workload c")
    parser.add_argument("--workloads", default="a,b,c,import")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round, tiny data")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--silent", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - {"a", "b", "c", "import"}
    if unknown:
        parser.error(f"Expected workloads among a, b, c, import. Received: {sorted(unknown)}.")
    args.contenders = [c.strip() for c in args.contenders.split(",")]
    if "hand" not in args.contenders or set(args.contenders) - set(TRAIN_CONTENDERS):
        parser.error(
            f"Expected contenders among {', '.join(TRAIN_CONTENDERS)}, including hand (the "
            f"reference). Received: {args.contenders}."
        )
    args.scale = "quick" if args.quick else "full"
    if args.quick:
        args.rounds = args.eval_rounds = 1
    if args.output is None:
        args.output = HERE / ("results-quick.md" if args.quick else "results.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    suite = Suite(args)
    report = Report(args, suite)
    if args.quick:
        suite.log("quick smoke test: 1 round, tiny workloads (numbers are not meaningful)")
    titles = {
        "a": "the tutorial CNN, batch 256, 1 epoch",
        "b": "16-32-4 MLP, batch 32, 2 epochs",
    }
    for workload in args.workloads:
        if workload in titles:
            report.train(workload, suite.train_workload(workload), titles[workload])
        elif workload == "c":
            report.evaluate(suite.eval_workload())
        else:
            report.imports(suite.import_workload())
    text = report.render(time.monotonic() - start)
    args.output.write_text(text)
    print()
    print(text)
    print(f"Written to {args.output}")
    return 1 if suite.errors else 0


if __name__ == "__main__":
    sys.exit(main())
