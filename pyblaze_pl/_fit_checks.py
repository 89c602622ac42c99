"""Whether what a checkpoint holds fits the call that loads it: the weights (names and shapes) and
the optimizers (class, parameter groups, state shapes). Checked before anything is loaded, so a
checkpoint that does not fit leaves the model's weights unchanged.

Plain torch; used by :mod:`pyblaze_pl._lightning.resume` (``ckpt_path``) and
:func:`pyblaze_pl.nn.load_checkpoint_weights`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["WeightsMismatch", "check_optimizers", "check_weights"]


def check_weights(
    expected: Mapping[str, torch.Tensor],
    saved: Mapping[str, Any],
    *,
    strict: bool,
    source: str,
    model: str = "this model",
    action: str = "Resume with",
) -> None:
    """Raises unless the checkpoint's weights ``saved`` fit the module whose state is ``expected``.

    Checked before anything is loaded, so that a wrong checkpoint leaves the weights unchanged.

    Args:
        expected: The module's ``state_dict()``.
        saved: The checkpoint's ``state_dict``.
        strict: Whether names must match exactly (Lightning's ``strict_loading``); shapes are
            always checked.
        source: The checkpoint, for the message.
        model: The model, for the message.
        action: What to do, for the message: ``"Resume with"``, ``"Load"``.

    Raises:
        WeightsMismatch: A ValueError (and, as ``load_state_dict`` raises, a RuntimeError) naming
            the first parameter that is missing, unexpected or of another shape.

    Example:
        >>> check_weights({"w": torch.zeros(2)}, {"w": torch.ones(2)}, strict=True, source="x")
    """

    def fail(problem: str) -> None:
        raise WeightsMismatch(
            f"Expected a checkpoint of {model}. Received: {source}, which {problem}. {action} "
            f"a checkpoint written by the same model class and configuration; nothing was loaded."
        )

    if strict:
        missing = _first(name for name in expected if name not in saved)
        if missing is not None:
            fail(f"has no {missing!r} (its first names: {_names(saved)})")
        unexpected = _first(name for name in saved if name not in expected)
        if unexpected is not None:
            fail(
                f"has {unexpected!r}, which the model does not have (the model's first names: "
                f"{_names(expected)})"
            )
    for name, value in expected.items():
        other = saved.get(name)
        tensors = isinstance(value, torch.Tensor) and isinstance(other, torch.Tensor)
        if tensors and value.shape != other.shape:
            fail(
                f"has {name!r} of shape {tuple(other.shape)}, where the model has "
                f"{tuple(value.shape)}"
            )


# Keys of an optimizer's parameter groups that torch versions add or remove without changing the
# algorithm, or that schedulers add (initial_lr): not compared.
_INCIDENTAL_KEYS = frozenset(
    {"params", "foreach", "maximize", "capturable", "differentiable", "fused", "initial_lr"}
    | {"decoupled_weight_decay"}  # compared by value where both have it (Adam / AdamW)
)


def check_optimizers(
    checkpoint: Mapping[str, Any], path: str, optimizers: Sequence[torch.optim.Optimizer]
) -> None:
    """Before training: refuses a checkpoint whose optimizer states do not fit ``optimizers``,
    the optimizers of the ``fit`` call, in order.

    Lightning loads a checkpoint's weights before its optimizer states, and ``load_state_dict``
    of an optimizer accepts another class's state (it fails at the first step, or trains with
    the other class's hyperparameters): checked here first, nothing is loaded. Compared: the
    number of optimizers, each one's class (told by the hyperparameters its parameter groups
    hold, as torch records no class), its parameter groups and their sizes, and the shape of
    every saved per-parameter state tensor. Hyperparameter values (``lr``) are not compared:
    resuming restores the saved ones, as in Lightning.

    Args:
        checkpoint: The checkpoint, as :func:`checkpoint_io.check_checkpoint` returned it.
        path: The checkpoint's path, for the message.
        optimizers: The optimizers of the call (none: nothing is checked).

    Raises:
        ValueError: Naming the checkpoint, the optimizer and what does not fit.

    Example:
        >>> sgd = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
        >>> check_optimizers({"optimizer_states": [sgd.state_dict()]}, "last.ckpt", [sgd])
    """
    if not optimizers:
        return
    names = ", ".join(type(o).__name__ for o in optimizers)

    def fail(received: str) -> None:
        raise ValueError(
            f"Expected a checkpoint of the optimizer{'s' * (len(optimizers) > 1)} of this fit "
            f"({_describe_optimizers(optimizers)}). Received: '{path}', {received}. Resume with "
            f"the optimizer the checkpoint was written with (class, parameter groups and "
            f"parameters); nothing was loaded."
        )

    saved = checkpoint.get("optimizer_states")
    if not saved:
        fail(
            "which holds no optimizer state: the weights only, as ModelCheckpoint("
            "save_weights_only=True) writes. To start a new training from its weights, load them "
            "with xnn.load_checkpoint_weights(model, path) and fit without ckpt_path"
        )
    if len(saved) != len(optimizers):
        fail(f"which holds the states of {len(saved)} optimizer(s), where this fit uses {names}")
    for index, (state, optimizer) in enumerate(zip(saved, optimizers, strict=True)):
        which = f"optimizer {index + 1} ({type(optimizer).__name__})" if len(optimizers) > 1 else ""
        problem = _optimizer_mismatch(state, optimizer)
        if problem:
            fail(f"whose {which or 'optimizer'} {problem}")


def _describe_optimizers(optimizers: Sequence[torch.optim.Optimizer]) -> str:
    return "; ".join(
        f"{type(o).__name__} over {len(o.param_groups)} parameter group(s) of "
        + "/".join(str(len(g["params"])) for g in o.param_groups)
        + " tensors"
        for o in optimizers
    )


def _optimizer_mismatch(state: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """How the saved ``state`` (an optimizer's ``state_dict()``) does not fit ``optimizer``."""
    groups = state.get("param_groups") if isinstance(state, Mapping) else None
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
        return "state is not an optimizer's state_dict (it has no list of 'param_groups')"
    current = optimizer.state_dict()["param_groups"]
    saved_keys = set(groups[0]) - _INCIDENTAL_KEYS if groups else set()
    own_keys = set(current[0]) - _INCIDENTAL_KEYS
    decoupled = [g[0].get("decoupled_weight_decay") for g in (groups, current) if g]
    if groups and (
        saved_keys != own_keys or (None not in decoupled and decoupled[0] != decoupled[1])
    ):
        guess = _classes_with(groups[0])
        return (
            f"is of another class: its hyperparameters are {', '.join(sorted(saved_keys))}"
            + (f" (those of {' or '.join(guess)})" if guess else "")
            + f", where {type(optimizer).__name__} has {', '.join(sorted(own_keys))}"
            + (
                f" (decoupled_weight_decay={decoupled[0]}, where {type(optimizer).__name__}'s "
                f"is {decoupled[1]})"
                if saved_keys == own_keys
                else ""
            )
        )
    if len(groups) != len(current):
        return f"has {len(groups)} parameter group(s), where this fit's has {len(current)}"
    for number, (saved, own) in enumerate(zip(groups, current, strict=True), start=1):
        if len(saved.get("params", ())) != len(own["params"]):
            return (
                f"has {len(saved.get('params', ()))} parameter tensors in parameter group "
                f"{number}, where this fit's has {len(own['params'])}"
            )
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for group in current for i in group["params"]]
    by_id = dict(zip(ids, parameters, strict=True))
    for key, values in (state.get("state") or {}).items():
        parameter = by_id.get(key)
        if parameter is None or not isinstance(values, Mapping):
            continue
        for name, value in values.items():
            if (
                isinstance(value, torch.Tensor)
                and value.dim() > 0
                and value.shape != parameter.shape
            ):
                return (
                    f"holds {name!r} of shape {tuple(value.shape)} for parameter {key}, where "
                    f"this fit's parameter {key} has shape {tuple(parameter.shape)}: an optimizer "
                    f"over other parameters"
                )
    return None


def _classes_with(group: Mapping[str, Any]) -> list[str]:
    """The torch.optim classes whose parameter groups hold the hyperparameters of ``group``."""
    keys = frozenset(group) - _INCIDENTAL_KEYS
    decoupled = group.get("decoupled_weight_decay")
    return [
        name
        for name, (own, own_decoupled) in _optimizer_signatures().items()
        if own == keys and (decoupled is None or own_decoupled in (None, decoupled))
    ]


@functools.cache
def _optimizer_signatures() -> dict[str, tuple[frozenset[str], Any]]:
    """Each torch.optim class's hyperparameter names (and default ``decoupled_weight_decay``)."""
    signatures = {}
    for name, cls in vars(torch.optim).items():
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            continue
        for kwargs in ({"lr": 1e-3}, {}):
            try:
                groups = cls([torch.zeros(1, 1, requires_grad=True)], **kwargs).param_groups
            except Exception:  # abstract, or needs other arguments
                continue
            keys = frozenset(groups[0]) - _INCIDENTAL_KEYS
            signatures[name] = (keys, groups[0].get("decoupled_weight_decay"))
            break
    return signatures


class WeightsMismatch(ValueError, RuntimeError):
    """Weights that do not fit a model: a ValueError, and a RuntimeError as
    ``nn.Module.load_state_dict`` raises for them."""


def _first(names: Iterable[str]) -> str | None:
    return next(iter(names), None)


def _names(state: Mapping[str, Any], count: int = 4) -> str:
    names = list(state)
    shown = ", ".join(repr(n) for n in names[:count])
    return shown + (", ..." if len(names) > count else "") if names else "none"
