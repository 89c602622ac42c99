"""Workload (a) on one GPU for every contender: samples per second.

Usage:
    python benchmarks/gpu_check.py [--rounds N] [--threads N] [--quick]

Trains the tutorial CNN (batch 256, 2 epochs over 50,000 random 3x32x32 images, as CIFAR-10)
on one GPU: the hand-written loop on ``cuda``, a plain Lightning Trainer with
``accelerator='gpu', devices=1``, pyblaze_pl and the original PyBlaze with ``gpu=True``. Each
round starts every contender in a fresh process (order rotated), the first round is dropped,
the median over the kept rounds is reported. Writes ``benchmarks/results_gpu.md`` (a
``## GPU`` section, which ``make bench`` includes in results.md) and replaces the GPU section
of an existing ``benchmarks/results.md``. Takes about 2-3 minutes.

Exits with status 2 and a message when no CUDA device is available.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as suite  # noqa: E402 - benchmarks/run.py (no torch at import)


def cuda_device() -> str | None:
    """The name of CUDA device 0, or None (asked in a separate process, so this one stays
    free of CUDA)."""
    code = "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    name = proc.stdout.strip()
    return name or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="kept rounds (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1 round on 4,096 images")
    parser.add_argument("--output", type=Path, default=HERE / "results_gpu.md")
    parser.add_argument(
        "--dry-run-on-cpu",
        action="store_true",
        help="test this script without a GPU: runs on the CPU and writes no file",
    )
    args = parser.parse_args(argv)

    dry = args.dry_run_on_cpu
    device = "CPU (dry run, not a GPU result)" if dry else cuda_device()
    if device is None:
        print(
            "gpu_check: no CUDA device is available (torch.cuda.is_available() is False); "
            "run it on a machine with an NVIDIA GPU. Nothing was measured or written.",
            file=sys.stderr,
        )
        return 2

    start = time.monotonic()
    env = suite.thread_env(args.threads)
    scale = "quick" if args.quick else "full"
    total = 1 if args.quick else args.rounds + 1
    kept: list[dict[str, dict]] = []
    skipped: dict[str, str] = {}
    errors: list[str] = []
    for r in range(total):
        results: dict[str, dict] = {}
        for contender in suite.rotated([c for c in suite.CONTENDERS if c not in skipped], r):
            argv_ = [
                str(HERE / "contenders.py"),
                contender,
                "gpu",
                "--device=cpu" if dry else "--device=cuda",
                f"--threads={args.threads}",
                f"--seed={args.seed}",
                f"--scale={scale}",
            ]
            record = suite.run_child(argv_, env)[0]
            if "skipped" in record:
                skipped[contender] = record["skipped"]
            elif "error" in record:
                errors.append(f"{contender}: {record['error']}")
            else:
                record["rate"] = record["samples"] / record["seconds"]
                results[contender] = record
        dropped = r == 0 and not args.quick
        print(
            f"[gpu] round {r + 1}{' (dropped)' if dropped else ''}: "
            + ", ".join(f"{c} {v['rate']:,.0f} samples/s" for c, v in results.items()),
            flush=True,
        )
        if not dropped:
            kept.append(results)

    header = [
        "contender",
        "samples/s (median)",
        "min-max samples/s",
        "time ratio to hand",
        "ratio to Lightning",
        "fixed cost / fit (ms)",
        "weights vs hand (rel. diff)",
    ]
    rows = []
    hand = kept[0].get("hand") if kept else None
    for c in suite.CONTENDERS:
        runs = [k[c] for k in kept if c in k]
        if c in skipped:
            rows.append([suite.LABELS[c], f"skipped: {skipped[c]}", "", "", "", "", ""])
        if not runs:
            continue
        ratio = suite.paired_ratios(kept, c, "hand", "seconds")
        vs_pl = suite.paired_ratios(kept, c, "lightning", "seconds")
        diff = ""
        if hand is not None:
            pairs = zip(runs[0]["checksum"], hand["checksum"], strict=True)
            diff = f"{max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs):.1e}"
        rows.append(
            [
                suite.LABELS[c],
                f"{statistics.median(x['rate'] for x in runs):,.0f}",
                f"{min(x['rate'] for x in runs):,.0f}-{max(x['rate'] for x in runs):,.0f}",
                f"{statistics.median(ratio):.3f}" if ratio else "",
                f"{statistics.median(vs_pl):.3f}" if vs_pl and c != "lightning" else "",
                f"{statistics.median(x['fixed_seconds'] for x in runs) * 1000:.1f}",
                diff,
            ]
        )
    samples = hand["samples"] if hand else "?"
    steps = hand["steps"] if hand else "?"
    lines = [
        "## GPU",
        "",
        f"`benchmarks/gpu_check.py{' --quick' if args.quick else ''}` on "
        f"{dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}, {device}, "
        f"in {(time.monotonic() - start) / 60:.1f} min. Workload (a), the tutorial CNN, batch "
        f"256: {samples:,} samples in {steps} steps, on one GPU (`gpu=True`; Lightning "
        "`accelerator='gpu', devices=1`; the hand-written loop on `cuda`). DataLoader "
        f"without workers, data on the host, moved per batch. {len(kept)} kept rounds"
        f"{'' if args.quick else ' (first dropped)'}. *weights vs hand*: relative "
        "difference of the weights' checksum (cuDNN kernels need not be deterministic).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    if errors:
        lines += ["Errors:", "", *(f"- {e}" for e in errors), ""]
    section = "\n".join(lines)
    print()
    print(section)
    if dry:
        return 1 if errors else 0
    args.output.write_text(section)
    results_md = HERE / "results.md"
    if results_md.exists() and args.output == HERE / "results_gpu.md":
        text = results_md.read_text()
        head = text.split("\n## GPU\n", 1)[0].rstrip("\n")
        results_md.write_text(head + "\n\n" + section)
        print(f"Written to {args.output} and the GPU section of {results_md}")
    else:
        print(f"Written to {args.output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
