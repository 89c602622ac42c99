"""The compare command's report: the two runs' calls side by side, call by call, and its exit
status.

Where docs/migration.md documents that PyBlaze's numbers are the wrong ones (gradient
accumulation, ``predict`` in training mode, 2.x's ``accuracy`` on probabilities), the report says
so next to the difference; the status stays 1, since the numbers do differ.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

from pyblaze_pl.compare._pyblaze import INSTALL
from pyblaze_pl.compare._values import Finding, compare

__all__ = ["DIFFERENT", "FAILED", "SAME", "Run", "known_reason", "render"]

SAME, DIFFERENT, FAILED = 0, 1, 2

_SHOWN_WITHIN = 12  # values within tolerance listed per call; the rest are summed up


@dataclass
class Run:
    """One run of the script.

    Attributes:
        label: ``"PyBlaze 2.3.2"`` or ``"pyblaze_pl 0.1.0"``.
        seconds: Wall time of the process.
        records: The calls it recorded, in call order.
        error: The error that ended it (a traceback), or ``None`` if it finished.
        stage: ``"import"`` when the library could not be imported, else ``"script"``.
        seeded_splits: PyBlaze's ``random_split(seed=None)`` calls seeded from NumPy's global
            generator (as pyblaze_pl's) instead of fresh OS entropy.
    """

    label: str
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    stage: str = "script"
    seeded_splits: int = 0


def known_reason(record: dict[str, Any], finding: Finding) -> str | None:
    """Why PyBlaze's value is the wrong one, if docs/migration.md documents it for this call.

    Args:
        record: PyBlaze's record of the call (``call`` and ``info``).
        finding: A value of that call past tolerance.

    Example:
        >>> record = {"call": "train", "info": {"gradient_accumulation_steps": 3}}
        >>> known_reason(record, Finding("", "History key", "train_loss", 0.9, "epoch 0"))[:32]
        'PyBlaze is wrong here: with grad'
    """
    info = record.get("info", {})
    steps = info.get("gradient_accumulation_steps", 1)
    if record["call"] in ("train", "fit") and steps > 1:
        return (
            f"PyBlaze is wrong here: with gradient_accumulation_steps={steps} it steps the "
            f"optimizer after the first batch of every group of {steps} and records each batch "
            f"loss divided by {steps}; pyblaze_pl steps after every {steps} batches and records "
            f'each batch\'s own loss (docs/migration.md §2, "Gradient accumulation").'
        )
    if record["call"] == "predict" and info.get("training"):
        return (
            "PyBlaze is wrong here: PyBlaze 2.x predicted with the model in training mode "
            "(dropout active, batch norm using and updating batch statistics), where it was "
            "left by fit without val_data; pyblaze_pl predicts in eval mode (docs/migration.md "
            '§2, "predict runs the model in eval mode").'
        )
    prefix = "val_" if record["call"] in ("train", "fit") else ""
    if any(finding.name == f"{prefix}{m}" for m in info.get("pyblaze_accuracy", ())):
        return (
            "PyBlaze 2.x's accuracy does not round float [N] predictions (probabilities), so "
            "it counts every probability strictly between 0 and 1 as wrong; pyblaze_pl rounds "
            'them as PyBlaze v1 did (docs/migration.md §1, "Functional", accuracy).'
        )
    return None


def render(
    script: str, runs: tuple[Run, Run], rtol: float, atol: float, seed: int
) -> tuple[str, int]:
    """The report and the exit status: 0 all within tolerance, 1 a difference, 2 a failed run.

    Args:
        script: The script as given on the command line (calls are named ``script:LINE``).
        runs: The PyBlaze run and the pyblaze_pl run.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        seed: The seed both runs started from.

    Example:
        >>> runs = (Run("PyBlaze 2.3.2", 1.0), Run("pyblaze_pl 0.1.0", 1.0))
        >>> text, status = render("train.py", runs, rtol=1e-5, atol=1e-8, seed=0)
        >>> status
        0
    """
    theirs, ours = runs
    lines = [
        f"pyblaze_pl.compare: {script} (seed {seed}, rtol={rtol}, atol={atol}; "
        f"{ours.label} against {theirs.label}, which is the reference)"
    ]
    for run in runs:
        outcome = "finished" if run.error is None else "FAILED"
        lines.append(
            f"  {run.label + ':':<20} {outcome} in {run.seconds:.2f} s, "
            f"{_count(len(run.records), 'call')} recorded"
        )
    if theirs.seeded_splits:
        lines.append(
            f"  PyBlaze's random_split(seed=None) drew its seed from NumPy's global generator, "
            f"as pyblaze_pl's does ({_count(theirs.seeded_splits, 'call')}); PyBlaze alone "
            f"would use fresh OS entropy, which no two runs share."
        )
    differing: list[str] = []
    calls, compared = min(len(theirs.records), len(ours.records)), 0
    for i in range(calls):
        old, new = theirs.records[i], ours.records[i]
        site = f"{script}:{old['line']}"
        if (old["call"], old["line"]) != (new["call"], new["line"]):
            lines += [
                "",
                f"Call {i + 1}: the runs took different paths: {theirs.label} called "
                f"{old['call']} at {site}, {ours.label} called {new['call']} at "
                f"{script}:{new['line']}. Later calls are not compared.",
            ]
            differing.append(site)
            break
        compared += 1
        findings = compare(old["result"], new["result"], rtol, atol)
        if "weights" in old and "weights" in new:
            findings += compare(old["weights"], new["weights"], rtol, atol)
        lines += ["", *_call_block(site, old, findings, differing)]
        if any(not f.ok for f in findings):
            differing.append(site)
    else:
        lines += _unpaired(script, theirs, ours, calls, differing)
    lines.append("")
    status = SAME
    for run in runs:
        if run.error is not None:
            status = FAILED
            where = "importing the library" if run.stage == "import" else "running the script"
            lines += [f"The {run.label} run failed while {where}:", _indent(run.error.rstrip())]
            if (
                run.stage == "import"
                and run.label.startswith("PyBlaze")
                and INSTALL not in run.error
            ):
                lines.append(f"  {INSTALL}")
            lines.append("")
    if status != FAILED and differing:
        status = DIFFERENT
    if status == SAME and compared == 0:
        lines.append(
            "Result: nothing to compare: the script made no train/fit, evaluate or predict call. "
            "Exit status 0."
        )
    elif status == SAME:
        lines.append(
            f"Result: every value within tolerance ({_count(compared, 'call')} compared). "
            f"Exit status 0."
        )
    elif status == DIFFERENT:
        lines.append(
            f"Result: values differ at {', '.join(differing)} ({_count(compared, 'call')} "
            f"compared). Exit status 1."
        )
    else:
        failed = [run.label for run in runs if run.error is not None]
        which = f"the {failed[0]} run" if len(failed) == 1 else "both runs"
        lines.append(
            f"Result: {which} failed ({_count(compared, 'call')} compared). Exit status 2."
        )
    return "\n".join(lines), status


def _call_block(
    site: str, record: dict[str, Any], findings: list[Finding], differing: list[str]
) -> list[str]:
    bad = [f for f in findings if not f.ok]
    head = f"{site}  {record['call']}  {'DIFFERS' if bad else 'same'}"
    lines = [head] + ([f"    {record['source']}"] if record.get("source") else [])
    width = max((len(f.label) for f in findings), default=0)
    reasons = {known_reason(record, f) for f in bad} - {None}
    within = [f for f in findings if f.ok]
    for finding in bad + within[:_SHOWN_WITHIN]:
        lines.append(f"  {finding.label:<{width}}  {_summary(finding)}")
    if len(within) > _SHOWN_WITHIN:
        rest = within[_SHOWN_WITHIN:]
        largest = max(f.largest for f in rest)
        lines.append(
            f"  ... and {len(rest)} more within tolerance (largest difference {largest:.3g})"
        )
    if bad and not reasons and differing:
        reasons = {
            f"This may follow from the difference at {differing[0]}: from there on the two runs "
            f"start from other weights (or other random draws)."
        }
    for reason in sorted(reasons):
        lines.append(textwrap.fill(reason, 100, initial_indent="  -> ", subsequent_indent="     "))
    return lines


def _summary(finding: Finding) -> str:
    if finding.problem is not None:
        return f"cannot compare: {finding.problem}"
    largest = "inf (NaN on one side)" if math.isinf(finding.largest) else f"{finding.largest:.3g}"
    if finding.first is None:
        return f"largest difference {largest}"
    return (
        f"largest difference {largest}; first past tolerance: {finding.first} "
        f"(PyBlaze {finding.expected:.6g}, pyblaze_pl {finding.actual:.6g})"
    )


def _unpaired(script: str, theirs: Run, ours: Run, calls: int, differing: list[str]) -> list[str]:
    """Calls one run made and the other did not (a failed run's are expected to be missing)."""
    lines = []
    for run, other in ((theirs, ours), (ours, theirs)):
        extra = run.records[calls:]
        if extra and other.error is None:
            sites = ", ".join(f"{r['call']} at {script}:{r['line']}" for r in extra)
            lines += ["", f"Only {run.label} made {_count(len(extra), 'more call')}: {sites}."]
            differing.append(f"{script}:{extra[0]['line']} (only {run.label})")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
