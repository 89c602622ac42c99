"""Mistakes caught before training, and errors of the first batches explained in the user's terms.

Everything here is plain Python and torch. The checks before training run once per ``fit``
(:func:`check_fit_call`, :func:`check_supervised`); :func:`explain_batch_error` and
:func:`metric_error` run only after a batch or a metric has failed, so that training itself pays
nothing for them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pyblaze_pl.nn.engine._keywords import (
    LOSS_HINT,
    OPTIMIZER_HINT,
    PLACES,
    fit_arguments,
    short,
    suggest,
)

if TYPE_CHECKING:
    from pyblaze_pl.nn.engine.base import Engine


def _what(value: object) -> str:
    """A few words on what ``value`` is, for messages."""
    if isinstance(value, type):
        return f"the class {value.__module__.split('.')[0]}.{value.__qualname__}"
    if isinstance(value, torch.optim.Optimizer):
        return f"an optimizer ({type(value).__name__})"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {short(value)}"


def _is_loss(value: object) -> bool:
    return isinstance(value, nn.modules.loss._Loss) or (
        isinstance(value, type) and issubclass(value, nn.modules.loss._Loss)
    )


def _keras_pair(value: object) -> bool:
    """``(x, y)`` given where a DataLoader belongs (Keras' ``validation_data=(x, y)``)."""
    return (
        isinstance(value, (tuple, list))
        and 1 <= len(value) <= 3
        and all(isinstance(v, torch.Tensor) or hasattr(v, "__array__") for v in value)
    )


def check_fit_call(engine: Engine, arguments: Mapping[str, object]) -> None:
    """Checks the arguments of ``fit`` that are mistakes in every engine, before training:
    ``(x, y)`` tensors instead of loaders, an optimizer or loss in a positional slot meant for
    something else, and early stopping on validation metrics without ``val_data``.

    Args:
        engine: The engine whose ``train`` was called.
        arguments: ``train``'s named arguments as received (``val_data``, ``epochs``, ...).

    Example:
        >>> check_fit_call(engine, {"train_data": loader, "val_data": (x, y)})  # doctest: +SKIP
        Traceback (most recent call last):
        TypeError: Expected val_data to be a DataLoader ... TensorDataset(x, y).loader(...)
    """
    for name in ("train_data", "val_data"):
        value = arguments.get(name)
        if _keras_pair(value):
            parts = ", ".join(_what(v) for v in value)  # type: ignore[union-attr]
            shuffle = "shuffle=True" if name == "train_data" else "shuffle=False"
            raise TypeError(
                f"Expected {name} to be a DataLoader of batches. Received: a "
                f"{type(value).__name__} of {len(value)} arrays ({parts}), as Keras takes them. "  # type: ignore[arg-type]
                f"Wrap them: TensorDataset(x, y).loader(batch_size=32, {shuffle}) "
                f"(torch.utils.data.TensorDataset; `import pyblaze_pl.nn` adds .loader)."
            )
    order = fit_arguments(engine)
    for position, name in enumerate(order[: order.index("gpu") + 1] if "gpu" in order else []):
        value = arguments.get(name)
        if name == "train_data" or value is None:
            continue
        hint = None
        if isinstance(value, torch.optim.Optimizer):
            hint = OPTIMIZER_HINT
        elif _is_loss(value):
            hint = LOSS_HINT
        if hint is not None:
            signature = ", ".join(order[: order.index("gpu") + 1])
            raise TypeError(
                f"Expected {name} at position {position + 1} of fit({signature}). Received: "
                f"{_what(value)} as `{name}`; {hint}"
            )
    _check_early_stopping(
        engine.model,
        arguments.get("callbacks"),
        arguments.get("val_data"),
        arguments.get("train_data"),
    )
    _check_metric_signatures(arguments.get("metrics"))


def check_own_steps_call(engine: Engine, kwargs: Mapping[str, Any], validates: bool) -> None:
    """Refuses, before training, what a LightningModule trained by its own steps cannot use:
    keywords for an engine (``optimizer=``, ``loss=``, misspelt ones) and validation data without
    a ``validation_step`` (Lightning would skip the validation loop, and every ``val_*`` value)."""
    name = type(engine.model).__name__
    if kwargs:
        # The engine's own ``train`` only: it takes no engine keywords (``optimizer=``, ``loss=``)
        # and passes nothing on to SupervisedEngine.train, so those are not accepted here.
        method = type(engine).train
        own = [
            p.name
            for p in inspect.signature(method).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        received = ", ".join(f"{k}={short(v)}" for k, v in kwargs.items())
        hints = [
            f"Did you mean `{close}` instead of `{key}`?"
            for key in kwargs
            if (close := suggest(key, own)) is not None and close != key
        ]
        hints += [f"`{key}`: {PLACES[key]}." for key in kwargs if key in PLACES]
        engine_keys = [k for k in kwargs if k in ("optimizer", "loss")]
        if engine_keys:
            hints.append(
                f"{name} trains with its own training_step and configure_optimizers; for "
                f"{', '.join(f'{k}=' for k in engine_keys)} set `__engine__ = "
                f"xnn.SupervisedEngine` on the class instead."
            )
        raise TypeError(
            f"Expected keyword arguments that fit ({type(engine).__name__}.train) accepts: "
            f"{', '.join(own)}. Received: {received}. " + " ".join(hints)
        )
    if validates and not _defines(engine.model, "validation_step"):
        raise ValueError(
            f"Expected {name} to define validation_step to validate on val_data: a "
            f"LightningModule trained by its own steps validates with its own validation_step. "
            f"Received: val_data without one (Lightning would skip validation, and val_loss and "
            f"every metric with it). Define validation_step, or set `__engine__ = "
            f"xnn.SupervisedEngine` to validate (x, y) batches with metrics=."
        )


def _defines(model: object, method: str) -> bool:
    """Whether ``model``'s class (not Lightning's base class) defines ``method``."""
    for cls in type(model).__mro__:
        if method in cls.__dict__:
            return cls.__module__.split(".")[0] not in ("pytorch_lightning", "lightning")
    return False


def _early_stopping_metric(callback: object) -> str | None:
    """The validation metric an early-stopping or checkpoint callback watches (PyBlaze's or
    Lightning's), or None. Lightning's classes are recognised by name, without importing
    Lightning."""
    from pyblaze_pl.nn.callbacks.early_stopping import EarlyStopping

    if isinstance(callback, EarlyStopping):
        names = [callback.metric] if isinstance(callback.metric, str) else callback.metric
        watched = [n for n in names if n.startswith("val_")]
        return watched[0] if watched else None
    lightning = any(
        c.__name__ in ("EarlyStopping", "ModelCheckpoint")
        and c.__module__.split(".")[0] in ("pytorch_lightning", "lightning")
        for c in type(callback).__mro__
    )
    monitor = getattr(callback, "monitor", None)
    if lightning and isinstance(monitor, str) and monitor.startswith("val_"):
        return monitor
    return None


def _check_early_stopping(
    model: object, callbacks: object, val_data: object, train_data: object
) -> None:
    if val_data is not None or not isinstance(callbacks, (list, tuple)):
        return
    if _defines(model, "val_dataloader") or _defines(train_data, "val_dataloader"):
        return  # a LightningModule or a DataModule that brings its validation data
    for i, callback in enumerate(callbacks):
        metric = _early_stopping_metric(callback)
        if metric is not None:
            what = "save a checkpoint" if "Checkpoint" in type(callback).__name__ else "stop early"
            raise ValueError(
                f"Expected val_data for callbacks[{i}] ({type(callback).__name__}), which watches "
                f"{metric!r}: without val_data no validation runs, {metric!r} is never "
                f"computed and it would never {what}. Received: val_data=None. Pass "
                f"val_data=<a DataLoader>, or watch 'train_loss' instead."
            )


def check_supervised(
    engine: Engine,
    optimizer: object,
    loss: object,
    arguments: Mapping[str, object],
    kwargs: Mapping[str, object],
) -> None:
    """Checks ``optimizer=`` and ``loss=`` of a supervised ``fit`` before training.

    Refuses a missing optimizer (naming where one was passed instead: ``optimiser=``, a positional
    slot), a loss class instead of an instance, and an optimizer none of whose parameters belongs
    to the model (training would change nothing).
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        found = [(f"`{k}=`", v) for k, v in kwargs.items() if isinstance(v, torch.optim.Optimizer)]
        found += [
            (f"`{k}` (a positional argument)", v)
            for k, v in arguments.items()
            if isinstance(v, torch.optim.Optimizer)
        ]
        where = ""
        if found:
            place, value = found[0]
            where = f"; {_what(value)} was passed as {place}"
            if place.startswith("`") and place.endswith("=`"):
                where += " (did you mean `optimizer`?)"
        received = "optimizer=None" if optimizer is None else _what(optimizer)
        raise TypeError(
            f"Expected optimizer to be a torch.optim.Optimizer, passed as optimizer=, e.g. "
            f"optimizer=optim.Adam(model.parameters()). Received: {received}{where}."
        )
    if isinstance(loss, type):
        raise TypeError(
            f"Expected loss to be a loss function or an instance of a loss module. Received: "
            f"{_what(loss)}; pass an instance: nn.{loss.__qualname__}()."
            if issubclass(loss, nn.Module)
            else f"Expected loss to be a loss function. Received: {_what(loss)}; pass an "
            f"instance: {loss.__qualname__}()."
        )
    _check_optimizer_owner(engine.model, optimizer, loss)


def _check_optimizer_owner(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss: object
) -> None:
    own = {id(p) for p in model.parameters()}
    if not own:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not params or any(id(p) in own for p in params):
        return
    shapes = ", ".join(str(tuple(p.shape)) for p in params[:4]) + (
        ", ..." if len(params) > 4 else ""
    )
    in_loss = isinstance(loss, nn.Module) and all(
        id(p) in {id(q) for q in loss.parameters()} for p in params
    )
    if in_loss:  # the loss's own parameters only: the model is never trained
        shapes += ", all of them the loss's"
    raise ValueError(
        f"Expected an optimizer over the parameters of the model ({type(model).__name__}, "
        f"{len(own)} parameter tensors), e.g. optim.Adam(model.parameters()). Received: "
        f"{type(optimizer).__name__} over {len(params)} parameter tensors ({shapes}), none of "
        f"which belongs to the model: training would leave the model unchanged. Was it built for "
        f"another model (or a copy of this one)?"
    )


def _check_metric_signatures(metrics: object) -> None:
    """Before training: each metric takes ``(y_pred, y_true)``; a class needs an instance."""
    if not isinstance(metrics, Mapping):
        return  # MetricSet explains
    for name, metric in metrics.items():
        if isinstance(metric, type):
            raise TypeError(
                f"Expected metrics[{name!r}] to be a function or a metric instance. Received: "
                f"{_what(metric)}; pass an instance: {metric.__qualname__}(...)."
            )
        function = getattr(metric, "update", None) if hasattr(metric, "compute") else metric
        if not callable(function):
            continue
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            continue
        try:
            signature.bind(None, None)
        except TypeError as e:
            raise TypeError(
                f"Expected metrics[{name!r}] to take (y_pred, y_true): metrics are called as "
                f"metric(y_pred, y_true) with the outputs of eval_batch. Received: "
                f"{getattr(function, '__name__', type(metric).__name__)}{signature} ({e})."
            ) from None
