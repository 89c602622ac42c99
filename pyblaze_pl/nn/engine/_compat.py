"""PyBlaze 2.x keyword arguments of ``train``/``evaluate``/``predict``.

- ``eval_``-prefixed keyword arguments of ``train`` go, without the prefix, to ``eval_batch``
  during validation (as in PyBlaze 2.x).
- PyBlaze's loop options without a counterpart (``eval_train``, ``eval_val``) are rejected
  with a TypeError that names the replacement, before anything runs; ``eval_every`` and
  ``val_iterations`` work as in PyBlaze 2.x (``_batches.py``, the run's validation schedule).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyblaze_pl.nn.engine._keywords import keyword_error

if TYPE_CHECKING:
    from pyblaze_pl.nn.engine.base import Engine

# PyBlaze train() options -> what to write instead. They start with `eval_` but are not
# arguments of eval_batch.
TRAIN_OPTIONS = {
    "eval_train": (
        "call model.evaluate(train_loader, metrics=...) after fit (pyblaze_pl computes metrics on "
        "the validation data only)"
    ),
    "eval_val": (
        "drop the argument (pyblaze_pl records val_loss whenever val_data and a loss are given)"
    ),
}
# Values of these options that mean "as before" (PyBlaze's defaults): accepted and ignored.
NEUTRAL = {
    "eval_every": None,
    "eval_train": False,
    "eval_val": True,
    "val_iterations": None,
    "iterations": None,
}

_PREFIX = "eval_"


def reject_options(kwargs: Mapping[str, Any], options: Mapping[str, str], method: str) -> None:
    """Raises a TypeError naming the replacement of the first PyBlaze option in ``kwargs``."""
    for name, replacement in options.items():
        if name in kwargs and not _neutral(name, kwargs[name]):
            raise TypeError(
                f"Expected no PyBlaze option {name}= in {method}: Lightning's Trainer runs the "
                f"loop. Received: {name}={kwargs[name]!r}. Instead, {replacement}."
            )


def _neutral(name: str, value: Any) -> bool:
    return name in NEUTRAL and value is NEUTRAL[name]


def drop_neutral(kwargs: dict[str, Any], options: Mapping[str, str]) -> dict[str, Any]:
    """``kwargs`` without the PyBlaze options given with their "as before" value."""
    return {k: v for k, v in kwargs.items() if not (k in options and _neutral(k, v))}


def check_v1_positional(method: str, second: object, third: object, keyword: str) -> None:
    """Refuses v1's positional order ``(data, iterations, metrics/callbacks, ...)``.

    v1's ``evaluate(data, iterations, metrics, ...)`` and ``predict(data, iterations,
    callbacks, ...)`` took ``iterations`` second; here ``metrics``/``callbacks`` come second.
    """
    v1_order = (
        isinstance(third, Mapping)
        if keyword == "metrics"
        else (second is None or isinstance(second, int))
        and isinstance(third, (list, tuple))
        and any(not isinstance(v, int) or isinstance(v, bool) for v in third)
    )
    if v1_order or (isinstance(second, int) and not isinstance(second, bool)):
        raise TypeError(
            f"Expected {method}(data, {keyword}=...) with keywords: PyBlaze v1's positional order "
            f"(data, iterations, {keyword}, ...) does not apply. Received: {method}(data, "
            f"{second!r}, {third!r}, ...). Write {method}(data, {keyword}=...) and, for "
            f"iterations=n, trainer_kwargs={{'limit_{'val' if keyword == 'metrics' else 'predict'}"
            f"_batches': n}}."
        )


def split_eval_kwargs(
    engine: Engine, kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Splits ``train``'s keyword arguments into those for ``train_batch`` and those for
    ``eval_batch`` (``eval_``-prefixed, returned without the prefix).

    Raises:
        TypeError: For PyBlaze loop options (``eval_every``, ...) and for ``eval_`` arguments
            that the engine's ``eval_batch`` does not accept.

    Example:
        >>> split_eval_kwargs(engine, {"loss": loss, "eval_temperature": 0.5})  # doctest: +SKIP
        ({'loss': loss}, {'temperature': 0.5})
    """
    reject_options(kwargs, TRAIN_OPTIONS, f"{type(engine).__name__}.train")
    kwargs = drop_neutral(dict(kwargs), TRAIN_OPTIONS)
    train = {k: v for k, v in kwargs.items() if not k.startswith(_PREFIX)}
    evaluation = {k[len(_PREFIX) :]: v for k, v in kwargs.items() if k.startswith(_PREFIX)}
    check_eval_kwargs(engine, evaluation, prefix=_PREFIX)
    return train, evaluation


def check_eval_kwargs(engine: Engine, kwargs: Mapping[str, Any], prefix: str = "") -> None:
    """Raises a TypeError, before anything runs, if ``engine.eval_batch`` rejects ``kwargs``."""
    check_batch_kwargs(engine, "eval_batch", kwargs, prefix)


def check_batch_kwargs(
    engine: Engine, method: str, kwargs: Mapping[str, Any], prefix: str = ""
) -> None:
    """Raises a TypeError, before anything runs, if ``engine.<method>(data, **kwargs)`` would
    reject ``kwargs`` (e.g. a misspelt keyword argument of ``train``)."""
    if not kwargs:
        return
    try:
        signature = inspect.signature(getattr(engine, method))
    except (TypeError, ValueError):  # no signature to check: the call will tell
        return
    try:
        signature.bind_partial(None, **kwargs)
    except TypeError as e:
        raise keyword_error(engine, method, signature, kwargs, prefix, e) from None
