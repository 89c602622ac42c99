"""What a call asks of Lightning: its callbacks split by kind, the runner, and the Trainer options
(PyBlaze-like defaults, ``gpu=``, then the user's ``trainer_kwargs``, checked)."""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pyblaze_pl._lightning import features, namespace
from pyblaze_pl._lightning.hooks import hooks_class
from pyblaze_pl.nn.callbacks.base import PredictionCallback, TrainingCallback

if TYPE_CHECKING:
    from pyblaze_pl._lightning.run import Run

_RESERVED = {
    "max_epochs": "epochs=",
    "min_epochs": "epochs=",
    "accelerator": "gpu=",
    "callbacks": "callbacks=",
    "accumulate_grad_batches": "gradient_accumulation_steps=",
}
CLIP_KEYS = ("gradient_clip_val", "gradient_clip_algorithm")


def split_callbacks(callbacks: object) -> tuple[list[object], list[Any]]:
    """Separates PyBlaze callbacks from Lightning callbacks, rejecting anything else."""
    if callbacks is None:
        return [], []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"Expected callbacks to be a list. Received: {type(callbacks).__name__}.")
    pyblaze, lightning = [], []
    for callback in callbacks:
        if callback is None:  # v1 ignored None entries
            continue
        if isinstance(callback, (TrainingCallback, PredictionCallback)):
            pyblaze.append(callback)
        elif namespace.origin(callback) is not None and hasattr(callback, "on_train_start"):
            lightning.append(callback)
        else:
            raise _not_a_callback(callback)
    return pyblaze, lightning


def _not_a_callback(callback: object) -> TypeError:
    name = type(callback).__name__
    hint = ""
    if namespace.origin(callback) is not None and hasattr(callback, "log_metrics"):
        hint = f" A Lightning logger goes to trainer_kwargs={{'logger': {name}(...)}}."
    shown = repr(callback) if type(callback).__repr__ is not object.__repr__ else "an instance"
    return TypeError(
        f"Expected each callback to be a PyBlaze TrainingCallback/PredictionCallback or a "
        f"Lightning Callback. Received: {shown[:80]} ({name}).{hint}"
    )


def _check_trainer_keys(pl: ModuleType, options: Mapping[str, Any]) -> None:
    """Refuses ``trainer_kwargs`` keys that Lightning's Trainer does not take, with the closest
    valid key, before the Trainer is built."""
    valid = [p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self"]
    unknown = [k for k in options if k not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"Expected trainer_kwargs keys that Lightning's Trainer takes. Received: "
            f"{unknown[0]!r}.{hint} Valid keys: {', '.join(valid)}."
        )


RUNNERS = ("auto", "trainer", "fabric", "lean")  # "lean": the Fabric runner's former name


def default_runner() -> str:
    """What ``runner='auto'`` means: the ``PYBLAZE_PL_RUNNER`` environment variable
    (``'trainer'`` or ``'fabric'`` force one runner wherever it can run), else ``'auto'``."""
    value = os.environ.get("PYBLAZE_PL_RUNNER", "auto")
    if value not in RUNNERS:
        raise ValueError(
            f"Expected the environment variable PYBLAZE_PL_RUNNER to be one of {RUNNERS}. "
            f"Received: {value!r}."
        )
    return value


def trainer_options(run: Run, **options: Any) -> dict[str, Any]:
    """PyBlaze-like defaults, ``gpu=``, then the user's ``trainer_kwargs`` (checked against
    the PyBlaze arguments they would contradict)."""
    user = run.user_options
    for key, argument in _RESERVED.items():
        if key in user:
            value = user[key]
            listed = key == "callbacks" and isinstance(value, (list, tuple))
            shown = f"<a {type(value).__name__} of {len(value)}>" if listed else repr(value)
            raise ValueError(
                f"Expected trainer_kwargs without {key!r}: pyblaze_pl sets it from "
                f"`{argument}`. Received: trainer_kwargs[{key!r}]={shown}."
            )
    if "devices" in user and run.devices.accelerator != "cpu":
        raise ValueError(
            f"Expected trainer_kwargs['devices'] only together with gpu=False (the number of "
            f"CPU processes). Received: devices={user['devices']!r} with gpu={run.gpu!r}; "
            f"choose GPUs with `gpu=` instead."
        )
    lightning = [c for c in run.lightning_callbacks if not isinstance(c, run.pl.Callback)]
    if lightning:
        raise _not_a_callback(lightning[0])
    _check_trainer_keys(run.pl, user)
    callbacks = [hooks_class(run.pl)(run), *run.lightning_callbacks]
    options = {
        "logger": False,
        "enable_checkpointing": any(isinstance(c, run.pl.callbacks.Checkpoint) for c in callbacks),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        **run.devices.as_trainer_kwargs(),
        **options,
        **user,
        "callbacks": callbacks,
    }
    return features.prepare(run, options, fit="max_epochs" in options)
