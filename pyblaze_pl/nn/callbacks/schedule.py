"""Schedules over the course of training: learning rates and other parameters (PyBlaze v1)."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pyblaze_pl.nn.callbacks.base import TrainingCallback
from pyblaze_pl.nn.results import Evaluation


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(
            f"Expected {name} to be a bool. Received: {value!r} ({type(value).__name__})."
        )


class LearningRateScheduler(TrainingCallback):
    """Steps a PyTorch learning rate scheduler after every epoch, or after every batch.

    The scheduler keeps its own state, so a second ``fit`` continues the schedule where the first
    one ended (as with a hand-written loop). With ``after_batch=True`` it steps once per training
    batch, also when gradients are accumulated over several batches.

    Args:
        scheduler: A scheduler of the optimizer passed to ``fit``, e.g. ``StepLR(optimizer, 10)``.
        after_batch: Whether to step after every batch instead of after every epoch.
        metric: The name of a metric logged after each epoch (``'val_loss'``) that is passed to
            ``scheduler.step``; required for ``ReduceLROnPlateau``, epoch steps only.

    Raises:
        TypeError: If ``scheduler`` has no ``step`` method.
        ValueError: If ``metric`` is missing for ``ReduceLROnPlateau`` or given with
            ``after_batch=True``.

    Example:
        >>> optimizer = optim.SGD(model.parameters(), lr=0.1)  # doctest: +SKIP
        >>> scheduler = StepLR(optimizer, step_size=10, gamma=0.5)  # doctest: +SKIP
        >>> model.fit(loader, optimizer=optimizer, loss=nn.MSELoss(),
        ...           callbacks=[LearningRateScheduler(scheduler)])  # doctest: +SKIP
    """

    def __init__(
        self, scheduler: Any, after_batch: bool = False, metric: str | None = None
    ) -> None:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(
                f"Expected scheduler to be a learning rate scheduler with a step() method, e.g. "
                f"torch.optim.lr_scheduler.StepLR(optimizer, step_size=10). "
                f"Received: {scheduler!r} ({type(scheduler).__name__})."
            )
        if isinstance(after_batch, str):
            raise TypeError(
                f"Expected after_batch to be a bool. Received: {after_batch!r} (str). PyBlaze "
                f"2.x's LearningRateScheduler(scheduler, metric, after_batch) took the metric "
                f"second; pass it by keyword: LearningRateScheduler(scheduler, "
                f"metric={after_batch!r})."
            )
        _check_bool("after_batch", after_batch)
        if metric is not None and not isinstance(metric, str):
            raise TypeError(
                f"Expected metric to be a metric name such as 'val_loss'. Received: {metric!r}."
            )
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if plateau and metric is None:
            raise ValueError(
                "Expected metric= with ReduceLROnPlateau, which steps on a metric, e.g. "
                "LearningRateScheduler(scheduler, metric='val_loss'). Received: metric=None."
            )
        if metric is not None and after_batch:
            raise ValueError(
                f"Expected after_batch=False with metric={metric!r}: metrics are logged after "
                f"each epoch. Received: after_batch=True."
            )
        self.scheduler = scheduler
        self.exec_after_batch = after_batch
        self.metric = metric

    after_batch_receives = "tensor"  # no host sync per batch

    def after_batch(self, train_loss: Any) -> None:
        if self.exec_after_batch:
            self.scheduler.step()

    def after_epoch(self, metrics: Evaluation) -> None:
        if self.exec_after_batch:
            return
        if self.metric is None:
            self.scheduler.step()
            return
        if self.metric not in metrics:
            raise ValueError(
                f"Expected LearningRateScheduler's metric {self.metric!r} among the metrics "
                f"logged after each epoch. Logged: {metrics.keys}."
            )
        self.scheduler.step(metrics[self.metric])

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state, saved in Lightning checkpoints so a resumed run continues it."""
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])


_PYBLAZE2_HINT = (
    " PyBlaze 2.x's ParameterScheduler(initial, schedule, *args, **kwargs) with "
    "schedule(value, epoch, iteration, ...), passed to fit as a keyword argument, is not "
    "supported; use PyBlaze v1's form: weight = torch.tensor(initial); "
    "ParameterScheduler(weight, lambda value, epoch: new_value) in callbacks=[...], and use "
    "the tensor `weight` (changed in place) where the value is needed."
)


def _check_schedule_arguments(schedule: Callable[..., Any]) -> None:
    """Raises a TypeError if ``schedule`` cannot be called as ``schedule(value, step)``."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):  # a builtin without a signature: calls will tell
        return
    try:
        signature.bind(0.0, 0)
    except TypeError:
        raise TypeError(
            f"Expected schedule to be a function (value, epoch_or_iteration) -> new value. "
            f"Received: {getattr(schedule, '__name__', schedule)!r} with parameters "
            f"{signature}.{_PYBLAZE2_HINT}"
        ) from None


class ParameterScheduler(TrainingCallback):
    """Changes the value of a tensor over the course of training, in place (PyBlaze v1).

    After every epoch, ``parameter`` is set to ``schedule(value, epoch)``, where ``value`` is its
    current value as a Python number and ``epoch`` is the 0-based index of the epoch that just
    ended. With ``after_batch=True`` it is set after every batch to ``schedule(value, iteration)``
    instead, where ``iteration`` counts the batches of this ``fit`` call from 1. Reading the value
    synchronises with the device, once per update: per batch with ``after_batch=True``.

    The tensor keeps its identity, device and dtype, so a loss or module holding it sees the new
    value.

    Args:
        parameter: A tensor with one element, e.g. ``torch.tensor(1.0)`` or an ``nn.Parameter``.
        schedule: ``(value, epoch_or_iteration) -> new value`` (a number).
        after_batch: Whether to update after every batch instead of after every epoch.
        *args: Not supported: PyBlaze 2.x's ``ParameterScheduler(initial, schedule, *args,
            **kwargs)``, whose value was passed to ``fit`` as a keyword argument. Given, they
            raise a TypeError that shows the form above.
        **kwargs: Not supported, as ``*args``.

    Raises:
        TypeError: If ``parameter`` is not a one-element tensor, ``schedule`` is not a function
            ``(value, epoch_or_iteration)``, or the PyBlaze 2.x form is used.

    Example:
        >>> weight = torch.tensor(1.0)
        >>> decay = ParameterScheduler(weight, lambda value, epoch: value * 0.9)
        >>> model.fit(loader, callbacks=[decay], loss=lambda y, t: weight * F.mse_loss(y, t),
        ...           optimizer=optimizer)  # doctest: +SKIP
    """

    def __init__(
        self,
        parameter: torch.Tensor,
        schedule: Callable[[float, int], float],
        after_batch: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if not isinstance(parameter, torch.Tensor) or parameter.numel() != 1:
            shape = (
                f" of shape {tuple(parameter.shape)}" if isinstance(parameter, torch.Tensor) else ""
            )
            hint = _PYBLAZE2_HINT if isinstance(parameter, numbers.Number) else ""
            raise TypeError(
                f"Expected parameter to be a tensor with one element, e.g. torch.tensor(1.0). "
                f"Received: a {type(parameter).__name__}{shape}.{hint}"
            )
        if not callable(schedule):
            raise TypeError(
                f"Expected schedule to be a function (value, epoch_or_iteration) -> new value. "
                f"Received: {schedule!r} ({type(schedule).__name__})."
            )
        if args or kwargs:
            extra = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
            raise TypeError(
                f"Expected ParameterScheduler(parameter, schedule, after_batch=False). Received "
                f"further arguments: {', '.join(extra)}.{_PYBLAZE2_HINT}"
            )
        _check_schedule_arguments(schedule)
        _check_bool("after_batch", after_batch)
        self.parameter = parameter
        self.schedule = schedule
        self.exec_after_batch = after_batch
        self.epoch: int | None = None
        self.iterations = 0

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self.epoch = None
        self.iterations = 0

    def before_epoch(self, current: int, num_iterations: int) -> None:
        self.epoch = current

    after_batch_receives = "tensor"  # no host sync per batch

    def after_batch(self, train_loss: Any) -> None:
        self.iterations += 1
        if self.exec_after_batch:
            self._update(self.iterations)

    def after_epoch(self, metrics: Evaluation) -> None:
        if not self.exec_after_batch and self.epoch is not None:
            self._update(self.epoch)

    def after_training(self) -> None:
        self.epoch = None

    def _update(self, step: int) -> None:
        value = self.schedule(self.parameter.item(), step)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, numbers.Real):
            raise TypeError(
                f"Expected ParameterScheduler's schedule to return a number. "
                f"Received: {value!r} ({type(value).__name__}) at step {step}."
            )
        with torch.no_grad():
            self.parameter.fill_(value)
