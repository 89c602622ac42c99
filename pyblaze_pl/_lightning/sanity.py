"""Before the first training step: the first validation batch through the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyblaze_pl._errors import describe, inspecting, with_context
from pyblaze_pl._lightning import data
from pyblaze_pl._lightning.batch_errors import likely_fix
from pyblaze_pl._tensors import map_tensors
from pyblaze_pl.nn.callbacks.base import TrainingCallback

if TYPE_CHECKING:
    from pyblaze_pl._lightning.run import Run


def check_validation_batch(run: Run) -> None:
    """Before the first training step: the first batch of ``val_data`` through the model
    (the engine's ``eval_batch``), in eval mode and without gradients, with every random
    generator restored afterwards (training and the History go on exactly as without it). A
    batch that cannot go through is an error naming ``val_data`` before the weights change,
    not after the first epoch. The loss and metrics are not called here (they may count their
    calls; a metric's errors are named at the first validation, as before). Skipped where the
    batch cannot be read without iterating the data (see :func:`~.data.first_batch`), for
    LightningModules' own steps and when ``eval_batch`` receives a callback's value."""
    if run.val_data is None or run.own_steps or run._resumed is not None:
        return
    if any(isinstance(value, TrainingCallback) for value in run.eval_kwargs.values()):
        return  # a value read per batch (ValueTrainingCallback): reading it here would count
    batch = None
    try:
        with inspecting(run.model), run.step_context():
            batch = data.first_batch(run.val_data)  # a data set may draw random numbers
            if batch is None:
                return
            device = run.module.device
            batch = map_tensors(batch, lambda tensor: tensor.to(device))
            run.engine.eval_batch(batch, **run.eval_kwargs)
    except Exception as e:
        fix = likely_fix(e, None, None, batch, run.model)
        raise with_context(
            e,
            f"val_data cannot go through the model: its first batch failed in "
            f"{type(run.engine).__name__}.eval_batch, checked before "
            f"training (nothing has been trained). First batch: {describe(batch)}."
            + (f"\n  likely fix: {fix}" if fix else ""),
        ) from e
