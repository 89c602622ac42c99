"""What verifying the CRC-32 checksums of a torch file costs, per GB, next to loading it.

Writes a torch file of ``--size-mb`` MB (float32 tensors of 64 MB, as a checkpoint holds), then,
in rounds, times: the checksum verification alone (``pyblaze_pl._files.zip_problem``),
``torch.load(weights_only=True)``, and ``torch.load(weights_only=True, mmap=True)`` (what the
``ckpt_path`` check uses). The file is in the page cache after the first round (it was just
written), so the numbers are the CPU cost of checking; from a cold disk every variant first pays
the read, which the checksum and the load share when the load follows it.

Usage:
    .venv/bin/python benchmarks/checksum_cost.py                # 1024 MB, 5 rounds
    .venv/bin/python benchmarks/checksum_cost.py --size-mb 256 --rounds 3

Prints one table (medians, seconds per GB) and, with ``--json``, a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyblaze_pl._files import read_torch_file, zip_problem

_TENSOR_MB = 64


def write_file(path: Path, size_mb: int) -> int:
    """Writes ``size_mb`` MB of float32 tensors with ``torch.save``; returns the file size."""
    count = max(1, size_mb // _TENSOR_MB)
    generator = torch.Generator().manual_seed(0)
    numel = min(size_mb, _TENSOR_MB) * (1 << 20) // 4
    state = {f"layer{i}.weight": torch.rand(numel, generator=generator) for i in range(count)}
    torch.save(state, path)
    return path.stat().st_size


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write the file (default: TMPDIR)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "checkpoint.pt"
        size = write_file(path, args.size_mb)
        gb = size / 1e9
        variants = {
            "checksums (zip_problem)": lambda: zip_problem(path),
            "torch.load": lambda: torch.load(path, weights_only=True),
            "torch.load(mmap=True)": lambda: torch.load(path, weights_only=True, mmap=True),
            "checksums + torch.load (read_torch_file)": lambda: read_torch_file(path, "x"),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, function in variants.items():
                times[name].append(timed(function))
        crc = bytes(64 << 20)
        raw = statistics.median(timed(lambda: zlib.crc32(crc)) for _ in range(3)) / (64 << 20) * 1e9

    result = {name: statistics.median(values) / gb for name, values in times.items()}
    result["zlib.crc32 on memory"] = raw
    print(f"file: {size / 1e6:.0f} MB, {args.rounds} rounds, medians in s per GB (warm cache)")
    print(f"zlib {zlib.ZLIB_VERSION}, torch {torch.__version__}")
    print("| operation | s per GB |")
    print("|---|---|")
    for name, value in result.items():
        print(f"| {name} | {value:.3f} |")
    if args.json:
        print(json.dumps({"size_bytes": size, **result}))
    return result


if __name__ == "__main__":
    main()
