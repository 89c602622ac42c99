"""The base engine: PyBlaze's ``train``/``evaluate``/``predict`` and the batch methods."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pyblaze_pl import _lightning
from pyblaze_pl._lightning import (
    check_datamodule,
    check_single_loader,
    provides_validation,
)
from pyblaze_pl.nn._metrics import MetricSet
from pyblaze_pl.nn.callbacks.base import PredictionCallback, TrainingCallback
from pyblaze_pl.nn.engine._batches import (
    apply_loop_options,
    check_fit_arguments,
    check_loader,
    check_positive_int,
    limit_batches,
    tensor_batches,
)
from pyblaze_pl.nn.engine._checks import check_fit_call
from pyblaze_pl.nn.engine._compat import (
    check_batch_kwargs,
    check_eval_kwargs,
    check_v1_positional,
    split_eval_kwargs,
)
from pyblaze_pl.nn.results import Evaluation, History


def collate(outputs: list[Any]) -> Any:
    """Concatenates per-batch outputs: tensors along dim 0, tuples/lists/dicts element-wise."""
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outputs)
    if isinstance(first, Mapping):
        return {k: collate([o[k] for o in outputs]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(collate(list(items)) for items in zip(*outputs, strict=True))
    return outputs


# PyBlaze hooks that pyblaze_pl does not call -> what to do instead
_DROPPED_HOOKS = {
    "collate_losses": (
        "return one loss from train_batch (several losses per batch are not recorded)"
    ),
    "collate_evals": "override collate_predictions and collate_targets (PyBlaze v1's hooks)",
}


def reject_dropped_hooks(engine: Engine) -> None:
    """Raises a TypeError, before anything runs, for an override of a PyBlaze 2.x hook that
    would otherwise be silently ignored."""
    for name, instead in _DROPPED_HOOKS.items():
        if callable(getattr(engine, name, None)):
            raise TypeError(
                f"Expected no {name} on {type(engine).__name__}: pyblaze_pl does not call "
                f"PyBlaze's {name} hook. Received: an override of {name}. Instead, {instead}."
            )


class Engine(TrainingCallback, PredictionCallback):
    """Binds a model to a way of training it: ``train``/``evaluate``/``predict`` run the model on
    Lightning, and subclasses say what happens to one batch.

    Subclasses implement :meth:`train_batch`, :meth:`eval_batch` and optionally
    :meth:`predict_batch`. An engine is also a PyBlaze callback: its own hooks run before the
    user's callbacks.

    Inside :meth:`train_batch`, call :meth:`backward` and :meth:`optimizer_step` instead of
    ``loss.backward()`` and ``optimizer.step()`` so that precision plugins, DDP and gradient
    clipping apply. :attr:`iteration`, :attr:`num_iterations`, :attr:`is_last_iteration` and
    :attr:`device` describe the current batch; they are read from the running call's
    :class:`~pyblaze_pl._lightning.context.BatchContext`.

    Args:
        model: The model to train.

    Example:
        >>> class Regression(Engine):
        ...     def train_batch(self, data, optimizer, loss):
        ...         x, y = data
        ...         value = loss(self.model(x), y)
        ...         self.backward(value)
        ...         self.optimizer_step(optimizer)
        ...         return value
        ...     def eval_batch(self, data):
        ...         x, y = data
        ...         return self.model(x), y
    """

    #: Whether the model trains itself (a LightningModule's own steps) rather than by the engine.
    trains_itself = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    # the current batch, as the running call publishes it
    @property
    def iteration(self) -> int:
        """The 0-based index of the current batch in its epoch."""
        return _lightning.current_context().iteration

    @property
    def num_iterations(self) -> int | None:
        """The number of batches of the current epoch (``None`` if the data has no length)."""
        return _lightning.current_context().num_iterations

    @property
    def is_last_iteration(self) -> bool:
        """Whether the current batch is the last one of its epoch."""
        return _lightning.current_context().is_last_iteration

    @property
    def device(self) -> torch.device:
        """The device of the model (and of the batches, inside a call)."""
        device = _lightning.current_context().device
        if device is None:
            parameter = next(self.model.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
        return device

    # high-level API
    def train(
        self,
        train_data: Iterable,
        val_data: Iterable | None = None,
        epochs: int = 20,
        callbacks: Sequence[object] | None = None,
        metrics: Mapping[str, object] | None = None,
        gpu: object = "auto",
        *,
        trainer_kwargs: Mapping[str, Any] | None = None,
        ckpt_path: str | os.PathLike | None = None,
        stop_on_nonfinite: bool = True,
        runner: str = "auto",
        **kwargs: Any,
    ) -> History:
        """Trains the model and returns its :class:`History`.

        Args:
            train_data: The training batches (a DataLoader).
            val_data: Validation batches, evaluated after every epoch.
            epochs: The (maximum) number of epochs.
            callbacks: PyBlaze callbacks and/or Lightning callbacks, in any order.
            metrics: Metrics computed on the validation data: name -> function
                ``(y_pred, y_true) -> Tensor`` or ``torchmetrics.Metric``. They are recorded as
                ``val_<name>``; the ``loss`` keyword (if any) is recorded as ``val_loss``.
            gpu: ``'auto'``, ``False``, ``True``, a GPU index or a list of GPU indices.
            trainer_kwargs: Further Lightning ``Trainer`` options (logger, precision, ...).
            ckpt_path: A Lightning checkpoint to resume from (e.g. ``last.ckpt`` written by
                ``ModelCheckpoint(save_last=True)``): weights, optimizer, epoch, callback states
                and the History are restored. Loaded with ``weights_only=True``.
            stop_on_nonfinite: Stop at the end of an epoch in which a batch loss was NaN or
                infinite (checked once per epoch, without extra synchronisation).
            runner: ``'auto'`` (default): Lightning Fabric when the call needs nothing of
                Lightning's Trainer (no Lightning callbacks, ``trainer_kwargs`` other than
                ``precision``, ``ckpt_path``; one device), else the Trainer. ``'trainer'``
                always uses the Trainer; ``'fabric'`` (``'lean'``, its former name) refuses a
                call Fabric cannot run. Both give the same numbers.
            **kwargs: Passed to :meth:`train_batch` on every batch (optimizer, loss, ...);
                those starting with ``eval_`` are passed to :meth:`eval_batch` instead, without
                the prefix, during validation (as in PyBlaze 2.x).

        Returns:
            The history of the run. Ctrl-C ends training cleanly: ``after_training`` runs and
            the History of the completed epochs is returned.
        """
        check_fit_call(self, locals())
        check_fit_arguments(train_data, val_data, epochs)
        reject_dropped_hooks(self)
        train_data, val_data, epochs = apply_loop_options(train_data, val_data, epochs, kwargs)
        eval_every = kwargs.pop("eval_every", None)  # left for a sized loader: when to validate
        if eval_every is not None:
            check_positive_int("eval_every", eval_every)
        kwargs, eval_kwargs = split_eval_kwargs(self, kwargs)
        self.check_train_kwargs(kwargs)
        val_metrics = MetricSet(metrics)  # checked even when there is no validation data
        if not provides_validation(train_data, val_data):
            val_metrics = MetricSet()
        elif callable(kwargs.get("loss")):
            val_metrics.add("loss", kwargs["loss"])
        return _lightning.start(self, gpu, callbacks, trainer_kwargs, runner, train_data).fit(
            train_data,
            val_data,
            epochs=epochs,
            metrics=val_metrics,
            train_kwargs=kwargs,
            eval_kwargs=eval_kwargs,
            ckpt_path=ckpt_path,
            stop_on_nonfinite=stop_on_nonfinite,
            eval_every=eval_every,
        )

    def evaluate(
        self,
        data: Iterable,
        metrics: Mapping[str, object] | None = None,
        callbacks: Sequence[object] | None = None,
        gpu: object = "auto",
        *,
        trainer_kwargs: Mapping[str, Any] | None = None,
        runner: str = "auto",
        iterations: int | None = None,
        **kwargs: Any,
    ) -> Evaluation:
        """Computes ``metrics`` over all of ``data`` and returns them as an :class:`Evaluation`.

        ``iterations=k`` (PyBlaze's) evaluates the first ``k`` batches only, e.g. of an endless
        loader. Further keyword arguments are passed to :meth:`eval_batch` on every batch.

        Example:
            >>> model.evaluate(test_loader, metrics={"accuracy": X.accuracy})  # doctest: +SKIP
            Evaluation(accuracy=0.56820)
        """
        check_loader(data, "data")
        check_single_loader(data, "data")
        check_datamodule(data, "val_dataloader", "evaluate")
        check_v1_positional("evaluate", metrics, callbacks, "metrics")
        reject_dropped_hooks(self)
        check_eval_kwargs(self, kwargs)
        data = limit_batches(data, iterations)
        metric_set = MetricSet(metrics)
        run = _lightning.start(self, gpu, callbacks, trainer_kwargs, runner, data)
        return run.evaluate(data, metric_set, kwargs)

    def predict(
        self,
        data: Iterable,
        callbacks: Sequence[object] | None = None,
        gpu: object = "auto",
        *,
        trainer_kwargs: Mapping[str, Any] | None = None,
        runner: str = "auto",
        iterations: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Runs the model on every batch of ``data`` and returns the outputs concatenated in
        loader order (on the CPU); ``iterations=k`` (PyBlaze's) takes the first ``k`` batches
        only, e.g. of an endless noise loader.

        ``data`` may also be a tensor of inputs (its first dimension is the samples), predicted in
        batches of :data:`PREDICT_BATCH_SIZE` rows, as Keras's ``predict``.

        Example:
            >>> model.predict(test_loader).shape  # doctest: +SKIP
            torch.Size([10000, 10])
            >>> model.predict(torch.randn(5, 4)).shape  # doctest: +SKIP
            torch.Size([5, 3])
        """
        if isinstance(data, torch.Tensor):
            data = tensor_batches(data)
        check_loader(data, "data")
        check_single_loader(data, "data")
        check_datamodule(data, "predict_dataloader", "predict")
        check_v1_positional("predict", callbacks, gpu, "callbacks")
        data = limit_batches(data, iterations)
        run = _lightning.start(self, gpu, callbacks, trainer_kwargs, runner, data)
        return run.predict(data, kwargs)

    def check_train_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Raises a TypeError, before training, for keyword arguments of ``train`` that
        :meth:`train_batch` does not accept."""
        check_batch_kwargs(self, "train_batch", kwargs)

    # batch processing (override in subclasses)
    def train_batch(self, data: Any, **kwargs: Any) -> Any:
        """Trains on one batch and returns its loss (a tensor; no ``.item()`` needed)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement train_batch.")

    def eval_batch(self, data: Any) -> tuple[Any, Any]:
        """Returns ``(y_pred, y_true)`` for one batch; metrics receive them."""
        raise NotImplementedError(f"{type(self).__name__} does not implement eval_batch.")

    def predict_batch(self, data: Any, **kwargs: Any) -> Any:
        """Returns the model's output for one batch (default: :meth:`forward` on the batch)."""
        return self.forward(data)

    def collate_predictions(self, predictions: list[Any]) -> Any:
        """Combines the outputs of :meth:`predict_batch` (default: concatenation).

        As in PyBlaze v1, an engine that overrides this method or :meth:`collate_targets` also
        shapes what evaluation metrics receive: they are called once per evaluation with
        ``collate_predictions([y_pred of every batch])`` and ``collate_targets([y_true of every
        batch])`` (the batches are kept until then). Without an override, metrics are updated
        batch by batch (streaming).
        """
        return collate(predictions)

    def collate_targets(self, targets: list[Any]) -> Any:
        """Combines the targets returned by :meth:`eval_batch` for the metrics (default:
        concatenation); see :meth:`collate_predictions`."""
        return collate(targets)

    def epoch_values(self) -> dict[str, list[float]]:
        """The values (by name) this engine recorded for every batch of the epoch that just
        ended, as floats; the run records them as ``batch_<name>`` and their mean as
        ``<name>`` in the History, and ``after_epoch`` callbacks receive the means (PyBlaze
        2.x's dict of values per batch, e.g. a WGAN's ``em_distance``). Default: none.
        """
        return {}

    def collates_evaluations(self) -> bool:
        """Whether metrics receive the collated outputs of a whole evaluation: true when the
        engine overrides :meth:`collate_predictions` or :meth:`collate_targets` (PyBlaze v1)."""
        cls = type(self)
        return (
            cls.collate_predictions is not Engine.collate_predictions
            or cls.collate_targets is not Engine.collate_targets
        )

    # helpers for train_batch
    def forward(self, x: Any) -> Any:
        """Calls the model: a tuple/list is unpacked into arguments, a dict into keywords."""
        if isinstance(x, (list, tuple)):
            return self.model(*x)
        if isinstance(x, Mapping):
            return self.model(**x)
        return self.model(x)

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagates ``loss`` through the running call's precision plugin and strategy
        (``loss.backward()`` outside a call)."""
        _lightning.current_context().backward(loss)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Updates the parameters with ``optimizer`` (clipping and unscaling gradients as the call
        is configured), then zeroes their gradients. Ctrl-C waits for the update to complete."""
        _lightning.current_context().optimizer_step(optimizer)
