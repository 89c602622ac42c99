"""PyBlaze's early stopping."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pyblaze_pl.nn.callbacks.base import CallbackException, TrainingCallback
from pyblaze_pl.nn.results import Evaluation


def is_improvement(current: float, best: float, minimize: bool) -> bool:
    """Whether ``current`` is strictly better than ``best`` (NaN never is).

    Example:
        >>> is_improvement(0.5, 0.6, minimize=True), is_improvement(0.6, 0.6, minimize=True)
        (True, False)
    """
    return current < best if minimize else current > best


class EarlyStopping(TrainingCallback):
    """Stops training after ``patience`` epochs in a row without strict improvement of a metric.

    Epochs in which the metric was not computed (no ``val_*`` values: validation skipped) do not
    count. A metric that is missing although its group (``val_``) was computed raises a
    ValueError that lists the logged names.

    Args:
        metric: The metric to watch (``'val_loss'``), or a list of metrics whose sum is watched.
        patience: The number of epochs without improvement after which training stops.
        restore_best: Whether to load the weights of the best epoch when training ends. The best
            weights are kept as a copy on the CPU.
        minimize: Whether smaller values are better.

    After training, ``best_epoch`` is the epoch (from 1) with the best value (0: none was
    better than the start), and ``restored_epoch`` the epoch whose weights ``restore_best``
    loaded back (None if it loaded none: the last epoch was the best, or ``restore_best`` is
    off).

    Example:
        >>> model.fit(train, val_data=val, callbacks=[EarlyStopping(patience=3)])  # doctest: +SKIP
    """

    def __init__(
        self,
        metric: str | list[str] = "val_loss",
        patience: int = 5,
        restore_best: bool = False,
        minimize: bool = True,
    ) -> None:
        names = [metric] if isinstance(metric, str) else metric
        if (
            not isinstance(names, (list, tuple))
            or not names
            or not all(isinstance(m, str) for m in names)
        ):
            raise ValueError(
                f"Expected metric to be a metric name or a non-empty list of names, e.g. "
                f"'val_loss'. Received: {metric!r}."
            )
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"Expected patience to be an int >= 1. Received: {patience!r}.")
        self.metric = metric
        self.patience = patience
        self.restore_best = restore_best
        self.minimize = minimize
        self.model: nn.Module | None = None
        self._reset()

    def _reset(self) -> None:
        self.epoch = 0
        self.counter = 0
        self.best_epoch = 0
        self.restored_epoch: int | None = None
        self.best_metric = math.inf if self.minimize else -math.inf
        self.best_state: dict[str, torch.Tensor] | None = None

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self.model = model
        self._reset()
        if self.restore_best:
            self.best_state = _cpu_copy(model)

    def after_epoch(self, metrics: Evaluation) -> None:
        self.epoch += 1
        current = self._current(metrics)
        if current is None:  # not computed in this epoch (validation skipped)
            return
        if is_improvement(current, self.best_metric, self.minimize):
            self.best_metric = current
            self.best_epoch = self.epoch
            self.counter = 0
            if self.restore_best and self.model is not None:
                self.best_state = _cpu_copy(self.model)
            return
        self.counter += 1
        if self.counter >= self.patience:
            raise CallbackException(
                f"Early stopping after epoch {self.epoch} (patience {self.patience})."
            )

    def after_training(self) -> None:
        if self.restore_best and self.counter > 0 and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.restored_epoch = self.best_epoch or None  # 0: the weights before training

    def state_dict(self) -> dict[str, Any]:
        """The counters (and best weights), saved in Lightning checkpoints for resuming."""
        keys = ("epoch", "counter", "best_metric", "best_epoch", "best_state")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def _current(self, metrics: Evaluation) -> float | None:
        names = [self.metric] if isinstance(self.metric, str) else self.metric
        missing = [m for m in names if m not in metrics]
        if missing:
            # `val_loss` is legitimately missing in an epoch without validation (no `val_*` at
            # all); a name that is missing while its group was computed is a mistake.
            # `train_loss` is missing only where training_step returned no loss (manual
            # optimization): the module's logged values are there to watch instead.
            prefix = missing[0].split("_")[0] + "_"
            group = "_" in missing[0] and missing[0] != "train_loss"
            if group and not any(k.startswith(prefix) for k in metrics.keys):
                return None
            raise ValueError(
                f"Expected EarlyStopping's metric {missing[0]!r} among the metrics logged after "
                f"epoch {self.epoch}. Logged: {metrics.keys}."
            )
        return sum(metrics[m] for m in names)


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
