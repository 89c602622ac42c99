"""Assertions for tests that prove a migration: histories and models compared value by value,
and whole PyBlaze code run under both libraries (:func:`compare_with_pyblaze`).

They raise an :class:`AssertionError` whose message says which key, which epoch, batch,
parameter or element differs, both values and the difference. NaN equals NaN.

Example:
    >>> from pyblaze_pl.testing import assert_histories_close, assert_models_close
    >>> assert_histories_close(new_history, {"train_loss": [0.9, 0.5]})  # doctest: +SKIP
    >>> assert_models_close(new_model, old_model.state_dict())  # doctest: +SKIP
    >>> compare_with_pyblaze(lambda nn: nn.MLEEngine(make_model()).train(...))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from pyblaze_pl.compare import _pyblaze
from pyblaze_pl.compare._values import compare, normalize
from pyblaze_pl.nn.results import History

__all__ = ["assert_histories_close", "assert_models_close", "compare_with_pyblaze"]

_SHOWN = 10  # mismatches listed in a message; the rest are counted


def assert_histories_close(
    actual: History | Mapping[str, Sequence[float]],
    expected: History | Mapping[str, Sequence[float]],
    rtol: float = 1e-5,
    atol: float = 1e-8,
    keys: Iterable[str] | None = None,
) -> None:
    """Asserts that two training histories hold the same keys and values, within tolerance.

    A value ``a`` is close to ``e`` if ``|a - e| <= atol + rtol * |e|``; NaN is close only to
    NaN, an infinity only to itself. ``duration`` is not compared.

    Args:
        actual: A :class:`~pyblaze_pl.nn.History`, or a mapping ``key -> list of values`` (e.g.
            ``History.to_dict()``, or numbers read from another library's history).
        expected: The reference, in the same forms.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        keys: The keys to compare (each must be in both); all keys by default, and then both
            must hold the same keys.

    Raises:
        AssertionError: Naming missing keys, different lengths, or each differing value with
            its key, its epoch (batch for ``micro_train_loss``), both values and the difference.

    Example:
        >>> history = History(0.0, [{"micro_train_loss": [1.0, 0.5], "train_loss": 0.75}])
        >>> assert_histories_close(history, {"micro_train_loss": [1.0, 0.5], "train_loss": [0.75]})
    """
    a, e = _history_values(actual, "actual"), _history_values(expected, "expected")
    if keys is None:
        only_a, only_e = sorted(set(a) - set(e)), sorted(set(e) - set(a))
        if only_a or only_e:
            raise AssertionError(
                f"Histories have different keys: only in actual: {only_a}, only in expected: "
                f"{only_e}. Pass keys=[...] to compare some of them."
            )
        names = sorted(a)
    else:
        names = [keys] if isinstance(keys, str) else list(keys)
        for name in names:
            for side, values in (("actual", a), ("expected", e)):
                if name not in values:
                    raise AssertionError(
                        f"History key {name!r} is missing in {side}. Keys in {side}: "
                        f"{sorted(values)}."
                    )
    mismatches, total = [], 0
    for name in names:
        unit, units = ("batch", "batches") if name == "micro_train_loss" else ("epoch", "epochs")
        if len(a[name]) != len(e[name]):
            raise AssertionError(
                f"History key {name!r} has {len(a[name])} values ({units}) in actual and "
                f"{len(e[name])} in expected."
            )
        total += len(a[name])
        for i, (x, y) in enumerate(zip(a[name], e[name], strict=True)):
            if not _close(x, y, rtol, atol):
                mismatches.append(f"{name}, {unit} {i}: {_difference(x, y, rtol, atol)}")
    if mismatches:
        raise AssertionError(
            f"Histories differ (rtol={rtol}, atol={atol}; epochs and batches count from 0, "
            f"batches over all epochs) in "
            f"{len(mismatches)} of {total} values:\n" + _listing(mismatches)
        )


def assert_models_close(
    actual: nn.Module | Mapping[str, Any],
    expected: nn.Module | Mapping[str, Any],
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> None:
    """Asserts that two models (or state dicts) hold the same parameters and buffers.

    Names, shapes and values are compared; values in float64 on the CPU, so models on different
    devices or in different float types can be compared. A value ``a`` is close to ``e`` if
    ``|a - e| <= atol + rtol * |e|``; NaN equals NaN.

    Args:
        actual: An ``nn.Module`` (its ``state_dict()``) or a state dict.
        expected: The reference, in the same forms.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Raises:
        AssertionError: Naming missing entries, different shapes, or for each differing tensor
            its name, how many elements differ and the largest difference with its index and
            both values.

    Example:
        >>> model = nn.Linear(2, 1)
        >>> assert_models_close(model, copy.deepcopy(model).state_dict())  # doctest: +SKIP
    """
    a, e = _state(actual, "actual"), _state(expected, "expected")
    only_a, only_e = sorted(set(a) - set(e)), sorted(set(e) - set(a))
    if only_a or only_e:
        raise AssertionError(
            f"Models have different parameters/buffers: only in actual: {only_a}, only in "
            f"expected: {only_e}."
        )
    mismatches = []
    for name in a:
        x, y = a[name], e[name]
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            if x != y:
                mismatches.append(f"{name!r}: actual={x!r}, expected={y!r}")
            continue
        if x.shape != y.shape:
            raise AssertionError(
                f"Model entry {name!r} has shape {tuple(x.shape)} in actual and "
                f"{tuple(y.shape)} in expected."
            )
        message = _tensor_difference(x, y, rtol, atol)
        if message is not None:
            mismatches.append(f"{name!r}: {message}")
    if mismatches:
        raise AssertionError(
            f"Models differ (rtol={rtol}, atol={atol}) in {len(mismatches)} of {len(a)} "
            f"parameters/buffers:\n" + _listing(mismatches)
        )


def compare_with_pyblaze(
    fn: Callable[[ModuleType], Any],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    seed: int = 0,
) -> None:
    """Runs ``fn(nn)`` once with PyBlaze's ``pyblaze.nn`` and once with ``pyblaze_pl.nn``, each
    after seeding ``random``, NumPy and torch with ``seed``, and asserts that both return the
    same values.

    ``fn`` returns Histories, Evaluations (PyBlaze 2.x: a ``dict``), tensors, numbers and modules
    (compared by their state dicts), alone or in tuples, lists and dicts. PyBlaze 2.x History keys
    get pyblaze_pl's names (``batch_loss`` -> ``micro_train_loss``, ``loss`` -> ``train_loss``).
    A value ``a`` of pyblaze_pl is close to PyBlaze's ``e`` if ``|a - e| <= atol + rtol * |e|``;
    NaN equals NaN. While ``fn`` runs with PyBlaze, ``torch.utils.data.Dataset`` has PyBlaze's
    ``loader``/``random_split``/``split`` (``random_split(seed=None)`` drawing its seed from
    NumPy's global generator, as pyblaze_pl's, where PyBlaze used fresh OS entropy); afterwards,
    whatever happens, it has what it had before.

    PyBlaze 2.3.2 is a test-only dependency: ``pip install --no-deps pyblaze==2.3.2``.

    Args:
        fn: Builds, trains and evaluates with the given ``nn`` module (its metrics are in
            ``nn.functional``); called twice.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        seed: The seed set before each call.

    Raises:
        AssertionError: Naming each differing value: the History key and epoch (batch for
            ``micro_train_loss``), the metric, or the parameter and element, with both values.
        ModuleNotFoundError: If PyBlaze is not installed (with the install line).
        ValueError: If ``rtol`` or ``atol`` is negative.

    Example:
        >>> def train(nn):
        ...     model = torch.nn.Linear(4, 1)
        ...     history = nn.MLEEngine(model).train(
        ...         loader, epochs=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        ...         loss=torch.nn.MSELoss(), gpu=False)
        ...     return history, model
        >>> compare_with_pyblaze(train)  # doctest: +SKIP
    """
    import pyblaze_pl.nn as ours

    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"Expected rtol >= 0 and atol >= 0. Received: rtol={rtol}, atol={atol}.")
    before = _pyblaze.current_helpers()
    try:
        theirs, helpers = _pyblaze.import_pyblaze()
        _pyblaze.set_helpers(helpers)
        expected = normalize(_seeded(fn, theirs, seed))
        _pyblaze.set_helpers(before)
        actual = normalize(_seeded(fn, ours, seed))
    finally:
        _pyblaze.set_helpers(before)
    findings = compare(expected, actual, rtol, atol)
    bad = [f.describe() for f in findings if not f.ok]
    if bad:
        raise AssertionError(
            f"pyblaze_pl differs from PyBlaze (the reference; rtol={rtol}, atol={atol}; epochs, "
            f"batches and elements count from 0) in {len(bad)} of {len(findings)} compared "
            f"keys, metrics, parameters and tensors:\n" + _listing(bad)
        )


# --- helpers -----------------------------------------------------------------------------------


def _seeded(fn: Callable[[ModuleType], Any], module: ModuleType, seed: int) -> Any:
    _pyblaze.seed_all(seed)
    return fn(module)


def _history_values(history: object, side: str) -> dict[str, list[float]]:
    if isinstance(history, History):
        return history.to_dict()
    if isinstance(history, Mapping):
        values = {}
        for key, value in history.items():
            if not isinstance(value, Sequence) or isinstance(value, str):
                raise TypeError(
                    f"Expected {side}[{key!r}] to be a list of numbers. Received: "
                    f"{type(value).__name__}."
                )
            values[key] = list(value)
        return values
    raise TypeError(
        f"Expected {side} to be a pyblaze_pl History or a mapping key -> list of numbers. "
        f"Received: {type(history).__name__}."
    )


def _state(model: object, side: str) -> dict[str, Any]:
    if isinstance(model, nn.Module):
        return dict(model.state_dict())
    if isinstance(model, Mapping):
        return dict(model)
    raise TypeError(
        f"Expected {side} to be an nn.Module or a state dict. Received: {type(model).__name__}."
    )


def _close(actual: float, expected: float, rtol: float, atol: float) -> bool:
    x, y = float(actual), float(expected)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= atol + rtol * abs(y)


def _difference(actual: float, expected: float, rtol: float, atol: float) -> str:
    x, y = float(actual), float(expected)
    allowed = atol + rtol * abs(y) if math.isfinite(y) else 0.0
    return f"actual={x!r}, expected={y!r}, |difference|={abs(x - y):.3g} (allowed {allowed:.3g})"


def _tensor_difference(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float
) -> str | None:
    """None if close, else: the number of differing elements and the largest difference."""
    x = actual.detach().to("cpu", torch.float64)
    y = expected.detach().to("cpu", torch.float64)
    close = torch.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
    if bool(close.all()):
        return None
    bad = ~close
    gaps = (x - y).abs().masked_fill(~bad, -1.0).nan_to_num(nan=math.inf)
    flat = int(gaps.argmax())
    index = tuple(int(i) for i in np.unravel_index(flat, tuple(x.shape)))
    return (
        f"{int(bad.sum())} of {x.numel()} elements differ; largest at index {index}: "
        f"{_difference(x[index].item(), y[index].item(), rtol, atol)}"
    )


def _listing(lines: list[str]) -> str:
    shown = "\n".join(f"  {line}" for line in lines[:_SHOWN])
    more = len(lines) - _SHOWN
    return shown + (f"\n  ... and {more} more" if more > 0 else "")
