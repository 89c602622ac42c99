"""Experiment trackers: PyBlaze callbacks that log the losses and metrics to a tracking service
(PyBlaze v1's ``NeptuneTracker``, 2.x's ``SacredTracker``, ``TensorboardTracker`` and
``WandbTracker``).

Each batch loss is logged as ``batch_train_loss`` and each value of the epoch's metrics
(``train_loss``, ``val_loss``, ``val_<metric>``) under its own name. The tracking packages are
optional and imported only when a tracker needs them. Logging a batch loss reads its value, a
host synchronisation per batch on a GPU. Lightning's loggers (``trainer_kwargs={'logger':
NeptuneLogger(...)}``, ``TensorBoardLogger``, ``WandbLogger``) are the alternative: they log
``train_loss`` and every ``val_*`` value once per epoch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from torch import nn

from pyblaze_pl._signals import deferred_sigint
from pyblaze_pl.nn.callbacks.base import TrainingCallback
from pyblaze_pl.nn.results import Evaluation

__all__ = ["NeptuneTracker", "SacredTracker", "TensorboardTracker", "WandbTracker"]


class _Tracker(TrainingCallback):
    """Calls :meth:`log_metric` for every batch loss and every epoch metric, with the step
    (batch or epoch index of this ``fit``)."""

    def __init__(self) -> None:
        self._batch = 0
        self._epoch = 0

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self._batch = 0
        self._epoch = 0

    after_batch_receives = "tensor"  # no host sync per batch

    def after_batch(self, train_loss: Any) -> None:
        for name, value in _batch_losses(train_loss):
            self.log_metric(name, float(value), self._batch)
        self._batch += 1

    def after_epoch(self, metrics: Evaluation) -> None:
        for name, value in metrics.to_dict().items():
            self.log_metric(name, float(value), self._epoch)
        self._epoch += 1

    def log_metric(self, name: str, value: float, step: int) -> None:
        """Logs one value."""
        raise NotImplementedError


def _batch_losses(train_loss: Any) -> Iterator[tuple[str, Any]]:
    """PyBlaze's names: ``batch_train_loss``, or ``batch_train_loss_<i/key>`` for several."""
    if isinstance(train_loss, (list, tuple)):
        yield from ((f"batch_train_loss_{i}", v) for i, v in enumerate(train_loss))
    elif isinstance(train_loss, dict):
        yield from ((f"batch_train_loss_{k}", v) for k, v in train_loss.items())
    else:
        yield "batch_train_loss", train_loss


def _require(package: str, tracker: str, logger: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise ImportError(
            f"{tracker} needs the `{package}` package, which is not installed: "
            f"pip install {package}. Alternatively pass Lightning's {logger} to fit: "
            f"trainer_kwargs={{'logger': {logger}(...)}}."
        ) from e


class NeptuneTracker(_Tracker):
    """Logs to a `Neptune <https://neptune.ai>`_ run (PyBlaze v1).

    Args:
        experiment: Where to log: an object with ``log_metric(name, value)`` (PyBlaze v1's
            ``neptune-client`` experiment), or a ``neptune`` run (``neptune.init_run()``,
            logged with ``run[name].append(value)``). ``None`` starts a run with
            ``neptune.init_run()``, configured by the ``NEPTUNE_PROJECT`` and
            ``NEPTUNE_API_TOKEN`` environment variables.

    Raises:
        ImportError: If ``experiment`` is ``None`` and ``neptune`` is not installed.

    Example:
        >>> import neptune  # doctest: +SKIP
        >>> run = neptune.init_run(project="team/project")  # doctest: +SKIP
        >>> tracker = NeptuneTracker(run)  # doctest: +SKIP
        >>> model.fit(loader, optimizer=opt, loss=loss, callbacks=[tracker])  # doctest: +SKIP
    """

    def __init__(self, experiment: Any = None) -> None:
        super().__init__()
        if experiment is None:
            experiment = _require("neptune", "NeptuneTracker()", "NeptuneLogger").init_run()
        self.experiment = experiment

    def log_metric(self, name: str, value: float, step: int) -> None:
        # Look on the type: a neptune run's instance __getattr__ raises a non-AttributeError
        # for legacy method names such as log_metric.
        if callable(getattr(type(self.experiment), "log_metric", None)):
            self.experiment.log_metric(name, value)
        else:
            self.experiment[name].append(value)


class SacredTracker(_Tracker):
    """Logs to a `Sacred <https://github.com/IDSIA/sacred>`_ run with ``log_scalar``
    (PyBlaze 2.x).

    Args:
        experiment: The ``sacred.Experiment`` (or run) to log to.

    Example:
        >>> tracker = SacredTracker(ex)  # doctest: +SKIP
        >>> model.fit(loader, optimizer=opt, loss=loss, callbacks=[tracker])  # doctest: +SKIP
    """

    def __init__(self, experiment: Any) -> None:
        super().__init__()
        self.experiment = experiment

    def log_metric(self, name: str, value: float, step: int) -> None:
        self.experiment.log_scalar(name, value)


class WandbTracker(_Tracker):
    """Logs to the current `Weights & Biases <https://wandb.ai>`_ run with ``wandb.log``
    (PyBlaze 2.x); call ``wandb.init(...)`` first.

    Raises:
        ImportError: If ``wandb`` is not installed.

    Example:
        >>> wandb.init(project="project")  # doctest: +SKIP
        >>> tracker = WandbTracker()  # doctest: +SKIP
        >>> model.fit(loader, optimizer=opt, loss=loss, callbacks=[tracker])  # doctest: +SKIP
    """

    def __init__(self) -> None:
        super().__init__()
        self._wandb = _require("wandb", "WandbTracker", "WandbLogger")

    def log_metric(self, name: str, value: float, step: int) -> None:
        self._wandb.log({name: value})


class TensorboardTracker(_Tracker):
    """Logs to TensorBoard event files in ``local_dir`` (PyBlaze 2.x); batch losses are
    indexed by the batch, epoch metrics by the epoch of the current ``fit``.

    Args:
        local_dir: The directory of the event files.

    Attributes:
        writer: The ``torch.utils.tensorboard.SummaryWriter``.

    Raises:
        ImportError: If ``tensorboard`` is not installed.

    Example:
        >>> tracker = TensorboardTracker("runs")  # doctest: +SKIP
        >>> model.fit(loader, optimizer=opt, loss=loss, callbacks=[tracker])  # doctest: +SKIP
    """

    def __init__(self, local_dir: str) -> None:
        super().__init__()
        _require("tensorboard", "TensorboardTracker", "TensorBoardLogger")
        with deferred_sigint():
            from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(local_dir)

    def log_metric(self, name: str, value: float, step: int) -> None:
        self.writer.add_scalar(name, value, step)
