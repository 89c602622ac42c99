"""Runs a DDP early-stop script N times while busy loops load the CPU, and counts how its
processes exited. A process that aborts while the interpreter shuts down prints
"terminate called ..." (the launching process then returns -6; another rank's abort shows only
in the output, as nothing waits for it).

Usage: stress_ddp_stop.py [-n 20] [--busy 3] [--scenario run|exit] [--starve-gloo] [--keep DIR]
  run:  ddp_run.py --stop-on-rank-1-after-epoch 2 (fit, evaluate and predict; the test scenario)
  exit: ddp_stop_exit.py --then-all-reduce (fit, then an all_reduce of the script's own into a
        global tensor, then exit)
  --starve-gloo: run the gloo worker threads of both processes under SCHED_IDLE (Linux), so that
        under load they lag far behind the main thread, as they sometimes do on a busy machine;
        makes the abort at exit frequent enough to measure (each run then takes minutes).
Prints the output of each failed run and a summary; exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Imported at start-up by every process (sitecustomize): moves the gloo worker threads to
# SCHED_IDLE as soon as they exist.
STARVE_GLOO = """
import os, threading, time

def _starve():
    done = set()
    while len(done) < 2:  # ProcessGroupGloo starts 2 worker threads
        for tid in set(os.listdir("/proc/self/task")) - done:
            try:
                name = open(f"/proc/self/task/{tid}/comm").read().strip()
            except OSError:
                continue
            if name == "pt_gloo_runloop":
                os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
                done.add(tid)
        time.sleep(0.01)

threading.Thread(target=_starve, daemon=True).start()
"""
SCENARIOS = {
    "run": lambda out: [HERE / "ddp_run.py", out, "--stop-on-rank-1-after-epoch", "2"],
    "exit": lambda out: [HERE / "ddp_stop_exit.py", "--then-all-reduce"],
}


def run_once(scenario: str, out: Path, site: Path | None = None) -> tuple[int, str]:
    """One run: its return code and its output (both processes write to the same pipes)."""
    env = dict(os.environ)
    paths = [str(HERE.parents[1]), str(site) if site else None, env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    command = [sys.executable, *map(str, SCENARIOS[scenario](out))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    return done.returncode, done.stdout + done.stderr


def stress(
    n: int, busy: int, scenario: str, starve_gloo: bool = False, keep: Path | None = None
) -> collections.Counter:
    """Runs ``scenario`` ``n`` times under ``busy`` busy loops; counts outcomes."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    outcomes: collections.Counter = collections.Counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            site = None
            if starve_gloo:
                site = Path(tmp) / "site"
                site.mkdir()
                (site / "sitecustomize.py").write_text(STARVE_GLOO)
            for i in range(n):
                rc, output = run_once(scenario, Path(tmp) / str(i), site)
                aborted = "terminate called" in output
                outcome = "ok" if rc == 0 and not aborted else f"rc={rc} abort={aborted}"
                outcomes[outcome] += 1
                if outcome != "ok":
                    print(f"run {i + 1}: {outcome}\n{output[-1500:]}", flush=True)
                    if keep is not None:
                        keep.mkdir(parents=True, exist_ok=True)
                        (keep / f"fail{i + 1}.log").write_text(output)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--busy", type=int, default=3)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="run")
    parser.add_argument("--starve-gloo", action="store_true")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    outcomes = stress(args.n, args.busy, args.scenario, args.starve_gloo, args.keep)
    starved = ", gloo threads starved" if args.starve_gloo else ""
    print(f"{args.scenario} x{args.n} with {args.busy} busy loops{starved}: {dict(outcomes)}")
    sys.exit(0 if set(outcomes) <= {"ok"} else 1)


if __name__ == "__main__":
    main()
