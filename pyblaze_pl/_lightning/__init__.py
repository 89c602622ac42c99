"""The Lightning boundary: the only package that imports ``pytorch_lightning``, ``lightning`` or
``lightning_fabric``, and the only one that touches their internals (all in :mod:`.compat`).

This module is the one entry that engines use: the checks of data in Lightning's shapes, the
batch context they read, and :func:`start`, which builds the :class:`~.run.Run` of one
``fit``/``evaluate``/``predict`` call (on Lightning's Trainer or on Lightning Fabric). Importing it
loads no Lightning module. See docs/architecture.md.
"""

from __future__ import annotations

from typing import Any

from pyblaze_pl._lightning.context import current as current_context
from pyblaze_pl._lightning.context import reached_through
from pyblaze_pl._lightning.data import (
    check_datamodule,
    check_single_loader,
    is_datamodule,
    is_lightning_module,
    provides_validation,
)
from pyblaze_pl._signals import deferred_sigint

__all__ = [
    "check_datamodule",
    "check_single_loader",
    "current_context",
    "is_datamodule",
    "is_lightning_module",
    "provides_validation",
    "reached_through",
    "start",
]


def start(
    engine: Any, gpu: object, callbacks: object, trainer_kwargs: object, runner: str, data: object
) -> Any:
    """The run of one call of ``engine`` (its ``fit``, ``evaluate`` or ``predict`` method runs it);
    ``options`` are :class:`~.run.Run`'s.

    The run module is imported on first use: ``import pyblaze_pl.nn`` loads no Lightning.
    """
    with deferred_sigint():
        from pyblaze_pl._lightning.run import Run

    return Run(
        engine,
        gpu=gpu,
        callbacks=callbacks,
        trainer_kwargs=trainer_kwargs,
        runner=runner,
        data=data,
    )
