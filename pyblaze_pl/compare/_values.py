"""What a call returned, made comparable across PyBlaze and pyblaze_pl.

:func:`normalize` turns a History, an Evaluation (or PyBlaze 2.x's ``dict``), a tensor, a module,
a number, or tuples, lists and dicts of them into a *node*: plain dicts, lists, floats and CPU
tensors, which ``torch.save`` writes and ``torch.load(..., weights_only=True)`` reads back.
PyBlaze 2.x History keys get pyblaze_pl's names. :func:`compare` walks two nodes and returns one
:class:`Finding` per History key, metric, parameter or tensor: the largest difference and the
first epoch, batch or element past tolerance.

This module imports neither PyBlaze nor pyblaze_pl.nn, so a run of either library can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["PYBLAZE_NAMES", "Finding", "compare", "normalize"]

# PyBlaze 2.x History key -> pyblaze_pl's (val_* keys are the same in both).
PYBLAZE_NAMES = {"batch_loss": "micro_train_loss", "loss": "train_loss"}

Node = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One compared History key, metric, parameter or tensor.

    Attributes:
        path: Where the value sits in what was returned (``"[0]"``, ``"['scores']"``; empty at
            the top).
        what: ``"History key"``, ``"metric"``, ``"parameter"``, ``"buffer"``, ``"value"`` or
            ``"output"``.
        name: The key or parameter name (empty for a bare tensor or number).
        largest: The largest absolute difference (``inf`` where only one side is NaN); ``None``
            if the values could not be compared (see ``problem``).
        first: The first epoch, batch or element past tolerance, e.g. ``"epoch 2"``; ``None``
            if every value is within tolerance.
        expected: PyBlaze's value there.
        actual: pyblaze_pl's value there.
        allowed: The difference allowed there, ``atol + rtol * |expected|``.
        problem: Why the values could not be compared (a missing key, another shape, ...).
    """

    path: str
    what: str
    name: str
    largest: float | None
    first: str | None = None
    expected: float | None = None
    actual: float | None = None
    allowed: float | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every value is within tolerance."""
        return self.problem is None and self.first is None

    @property
    def label(self) -> str:
        """``path what 'name'``, e.g. ``[0] History key 'val_loss'``."""
        name = f" {self.name!r}" if self.name else ""
        return f"{self.path} {self.what}{name}".strip()

    def describe(self, sides: tuple[str, str] = ("PyBlaze", "pyblaze_pl")) -> str:
        """One line: what differs, where first, both values and the difference."""
        if self.problem is not None:
            return f"{self.label}: {self.problem}"
        if self.first is None:
            return f"{self.label}: within tolerance (largest difference {_g(self.largest)})"
        return (
            f"{self.label}, {self.first}: {sides[0]}={self.expected!r}, {sides[1]}="
            f"{self.actual!r}, |difference|={_g(abs(self.actual - self.expected))} (allowed "
            f"{_g(self.allowed)}); largest difference {_g(self.largest)}"
        )


def normalize(value: Any) -> Node:
    """The comparable node of ``value`` (a PyBlaze 2.x History gets pyblaze_pl's key names).

    Example:
        >>> normalize((torch.zeros(2), 0.5))["kind"]
        'sequence'
    """
    if _is_history(value):
        return {"kind": "history", "values": _history_values(value)}
    if isinstance(value, nn.Module):
        module = value.module if isinstance(value, nn.DataParallel) else value
        state = module.state_dict()
        values = {k: _cpu(v) for k, v in state.items() if _tensor(v)}
        buffers = sorted(
            set(values) - {k for k, _ in module.named_parameters(remove_duplicate=False)}
        )
        return {"kind": "weights", "values": values, "buffers": buffers}
    if isinstance(value, torch.Tensor | np.ndarray):
        return {"kind": "tensor", "value": _cpu(torch.as_tensor(value))}
    if isinstance(value, bool | int | float | np.number):
        return {"kind": "number", "value": float(value)}
    if isinstance(value, Mapping):
        items = value.to_dict() if _is_evaluation(value) else value
        return {"kind": "mapping", "items": {str(k): normalize(v) for k, v in items.items()}}
    if isinstance(value, list | tuple):
        return {"kind": "sequence", "items": [normalize(v) for v in value]}
    return {"kind": "other", "repr": f"{type(value).__name__}: {value!r}"[:200]}


def compare(
    expected: Node,
    actual: Node,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    path: str = "",
    sides: tuple[str, str] = ("PyBlaze", "pyblaze_pl"),
) -> list[Finding]:
    """Compares two nodes value by value: ``|actual - expected| <= atol + rtol * |expected|``
    (NaN equals NaN, an infinity only itself).

    Example:
        >>> [f.first for f in compare(normalize([1.0, 2.0]), normalize([1.0, 2.5]))]
        [None, 'value']
        >>> compare(normalize(torch.ones(3)), normalize(torch.tensor([1.0, 2, 1])))[0].first
        'element (1,)'
    """
    kind, other = expected["kind"], actual["kind"]
    if kind != other:
        what = f"{sides[0]} returned {_KINDS[kind]}, {sides[1]} {_KINDS[other]}"
        return [Finding(path, "value", "", None, problem=what)]
    if kind == "history":
        return _compare_history(expected["values"], actual["values"], rtol, atol, path, sides)
    if kind == "weights":
        findings = _compare_named(
            expected["values"], actual["values"], rtol, atol, path, sides, "parameter"
        )
        buffers = set(expected.get("buffers", ()))
        return [replace(f, what="buffer") if f.name in buffers else f for f in findings]
    if kind == "mapping":
        return _compare_named(expected["items"], actual["items"], rtol, atol, path, sides, None)
    if kind == "sequence":
        e, a = expected["items"], actual["items"]
        if len(e) != len(a):
            problem = f"{len(e)} items from {sides[0]}, {len(a)} from {sides[1]}"
            return [Finding(path, "value", "", None, problem=problem)]
        return [
            finding
            for i, (x, y) in enumerate(zip(e, a, strict=True))
            for finding in compare(x, y, rtol, atol, f"{path}[{i}]", sides)
        ]
    if kind == "other":
        if expected["repr"] == actual["repr"]:
            return [Finding(path, "value", "", 0.0)]
        problem = f"{sides[0]} returned {expected['repr']}, {sides[1]} {actual['repr']}"
        return [Finding(path, "value", "", None, problem=problem)]
    if kind == "number":
        e, a = _t(expected["value"]), _t(actual["value"])
        return [_compare_tensor(e, a, rtol, atol, path, "value", "", sides)]
    e, a = expected["value"], actual["value"]
    return [_compare_tensor(e, a, rtol, atol, path, "output", "", sides)]


# --- helpers -----------------------------------------------------------------------------------

_KINDS = {
    "history": "a History",
    "weights": "a module",
    "tensor": "a tensor",
    "number": "a number",
    "mapping": "a mapping",
    "sequence": "a sequence",
    "other": "another value",
}


def _compare_named(
    expected: dict[str, Node | torch.Tensor],
    actual: dict[str, Node | torch.Tensor],
    rtol: float,
    atol: float,
    path: str,
    sides: tuple[str, str],
    what: str | None,
) -> list[Finding]:
    """Mappings (``what=None``: their values are nodes) and state dicts, name by name."""
    findings = []
    for name in [*expected, *(k for k in actual if k not in expected)]:
        if name not in actual or name not in expected:
            side = sides[0] if name in expected else sides[1]
            findings.append(Finding(path, what or "key", name, None, problem=f"only in {side}"))
        elif what is not None:
            findings.append(
                _compare_tensor(expected[name], actual[name], rtol, atol, path, what, name, sides)
            )
        elif expected[name]["kind"] == actual[name]["kind"] == "number":
            e, a = expected[name]["value"], actual[name]["value"]
            findings.append(_compare_tensor(_t(e), _t(a), rtol, atol, path, "metric", name, sides))
        else:
            inner = f"{path}[{name!r}]"
            findings += compare(expected[name], actual[name], rtol, atol, inner, sides)
    return findings


def _compare_history(
    expected: dict[str, list[float]],
    actual: dict[str, list[float]],
    rtol: float,
    atol: float,
    path: str,
    sides: tuple[str, str],
) -> list[Finding]:
    epochs = max((len(v) for k, v in expected.items() if k != "micro_train_loss"), default=0)
    findings = []
    # Keys only pyblaze_pl records (a WGAN's micro_train_loss, ...) add to PyBlaze's History:
    # nothing to compare them with, and no difference in the values PyBlaze's code reads.
    for key in expected:
        if key not in actual:
            findings.append(Finding(path, "History key", key, None, problem=f"only in {sides[0]}"))
            continue
        e, a = expected[key], actual[key]
        unit = "batches" if key == "micro_train_loss" else "epochs"
        if len(e) < len(a) == epochs and len([v for v in a if v == v]) == len(e):
            a = [v for v in a if v == v]  # eval_every: NaN in epochs PyBlaze did not validate
        if len(e) != len(a):
            problem = f"{len(e)} {unit} from {sides[0]}, {len(a)} from {sides[1]}"
            findings.append(Finding(path, "History key", key, None, problem=problem))
            continue
        position = _epoch
        if key == "micro_train_loss":
            per_epoch = len(e) // epochs if epochs and len(e) % epochs == 0 else 0
            position = _batch(per_epoch)
        findings.append(
            _compare_tensor(_t(e), _t(a), rtol, atol, path, "History key", key, sides, position)
        )
    return findings


def _compare_tensor(
    expected: torch.Tensor,
    actual: torch.Tensor,
    rtol: float,
    atol: float,
    path: str,
    what: str,
    name: str,
    sides: tuple[str, str],
    position: Any = None,
) -> Finding:
    """``position(index)`` names the first element past tolerance (default: ``element (i, j)``)."""
    if tuple(expected.shape) != tuple(actual.shape):
        problem = (
            f"shape {tuple(expected.shape)} from {sides[0]}, {tuple(actual.shape)} from {sides[1]}"
        )
        return Finding(path, what, name, None, problem=problem)
    e = expected.detach().to("cpu", torch.float64)
    a = actual.detach().to("cpu", torch.float64)
    if e.numel() == 0:
        return Finding(path, what, name, 0.0)
    same = (a == e) | (a.isnan() & e.isnan())
    gaps = torch.where(same, torch.zeros_like(a), (a - e).abs()).nan_to_num(nan=math.inf)
    largest = float(gaps.max())
    bad = ~torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if not bool(bad.any()):
        return Finding(path, what, name, largest)
    flat = int(bad.reshape(-1).nonzero()[0])
    index = tuple(int(i) for i in np.unravel_index(flat, tuple(e.shape)))
    x, y = float(e[index]), float(a[index])
    allowed = atol + rtol * abs(x) if math.isfinite(x) else 0.0
    position = position or (lambda i: f"element {i}" if i else "value")
    first = position(index)
    return Finding(path, what, name, largest, first, x, y, allowed)


def _epoch(index: tuple[int, ...]) -> str:
    return f"epoch {index[0]}"


def _batch(per_epoch: int) -> Any:
    def position(index: tuple[int, ...]) -> str:
        epoch = f" (epoch {index[0] // per_epoch})" if per_epoch else ""
        return f"batch {index[0]}{epoch}"

    return position


def _is_history(value: object) -> bool:
    return type(value).__name__ == "History" and _module(value).startswith(
        ("pyblaze.", "pyblaze_pl.")
    )


def _is_evaluation(value: object) -> bool:
    return type(value).__name__ == "Evaluation" and hasattr(value, "to_dict")


def _module(value: object) -> str:
    return type(value).__module__ or ""


def _history_values(history: Any) -> dict[str, list[float]]:
    if _module(history).startswith("pyblaze."):  # PyBlaze 2.x: each key's values as attribute
        values = {PYBLAZE_NAMES.get(k, k): getattr(history, k) for k in history.keys}
    else:
        values = history.to_dict()
    return {k: [_float(x) for x in v] for k, v in values.items()}


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return math.nan


def _tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor)


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu").clone()


def _t(values: float | list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _g(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"
