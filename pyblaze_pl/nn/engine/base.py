"""The base engine: PyBlaze's ``train``/``evaluate``/``predict`` on a Lightning Trainer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from torch import nn

from pyblaze_pl._io import require_file
from pyblaze_pl.nn._metrics import MetricSet
from pyblaze_pl.nn.callbacks._bridge import PyBlazeBridge
from pyblaze_pl.nn.callbacks.base import PredictionCallback, TrainingCallback
from pyblaze_pl.nn.engine._compat import (
    EVALUATE_OPTIONS,
    PREDICT_OPTIONS,
    check_batch_kwargs,
    check_eval_kwargs,
    reject_options,
    split_eval_kwargs,
)
from pyblaze_pl.nn.engine._devices import DeviceConfig, fast_cuda_checks, resolve_gpu
from pyblaze_pl.nn.engine._interrupts import InterruptGuard
from pyblaze_pl.nn.engine._module import EngineModule
from pyblaze_pl.nn.engine._quiet import quiet
from pyblaze_pl.nn.engine._recorder import HistoryRecorder, to_host
from pyblaze_pl.nn.results import Evaluation, History

# Trainer options that PyBlaze arguments own: key -> the argument to use instead.
_RESERVED = {
    "max_epochs": "epochs=",
    "min_epochs": "epochs=",
    "accelerator": "gpu=",
    "callbacks": "callbacks=",
    "accumulate_grad_batches": "gradient_accumulation_steps=",
}
_CLIP_KEYS = ("gradient_clip_val", "gradient_clip_algorithm")


def _check_loader(data: object, name: str) -> None:
    if not isinstance(data, Iterable):
        raise TypeError(
            f"Expected {name} to be a DataLoader (or another iterable of batches). "
            f"Received: {type(data).__name__}."
        )
    try:
        size = len(data)  # type: ignore[arg-type]
    except TypeError:
        return  # iterable-style data sets have no length
    if size == 0:
        raise ValueError(f"Expected {name} to yield at least one batch. Received: an empty loader.")


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Expected {name} to be an int >= 1. Received: {value!r}.")


def check_fit_arguments(train_data: object, val_data: object, epochs: object) -> None:
    _check_loader(train_data, "train_data")
    if val_data is not None:
        _check_loader(val_data, "val_data")
    check_positive_int("epochs", epochs)


def split_callbacks(callbacks: Sequence[object] | None) -> tuple[list[object], list[pl.Callback]]:
    """Separates PyBlaze callbacks from Lightning callbacks, rejecting anything else."""
    if callbacks is None:
        return [], []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"Expected callbacks to be a list. Received: {type(callbacks).__name__}.")
    pyblaze, lightning = [], []
    for callback in callbacks:
        if isinstance(callback, (TrainingCallback, PredictionCallback)):
            pyblaze.append(callback)
        elif isinstance(callback, pl.Callback):
            lightning.append(callback)
        elif type(callback).__module__.startswith("lightning."):
            raise TypeError(
                f"Expected Lightning callbacks from the `pytorch_lightning` package. Received: "
                f"{type(callback).__module__}.{type(callback).__name__} from the separate "
                f"`lightning` package; import it as `from pytorch_lightning.callbacks import "
                f"{type(callback).__name__}` instead."
            )
        else:
            raise TypeError(
                f"Expected each callback to be a pyblaze_pl TrainingCallback/PredictionCallback "
                f"or a pytorch_lightning.Callback. Received: {callback!r} "
                f"({type(callback).__name__})."
            )
    return pyblaze, lightning


def trainer_options(
    devices: DeviceConfig,
    callbacks: list[pl.Callback],
    trainer_kwargs: Mapping[str, Any] | None,
    gpu: object,
    **options: Any,
) -> dict[str, Any]:
    """The Trainer arguments for one run: PyBlaze-like defaults, ``gpu=``, then the user's
    ``trainer_kwargs`` (checked against the PyBlaze arguments they would contradict)."""
    user = dict(trainer_kwargs or {})
    for key, argument in _RESERVED.items():
        if key in user:
            raise ValueError(
                f"Expected trainer_kwargs without {key!r}: pyblaze_pl sets it from `{argument}`. "
                f"Received: trainer_kwargs[{key!r}]={user[key]!r}."
            )
    if "devices" in user and devices.accelerator != "cpu":
        raise ValueError(
            f"Expected trainer_kwargs['devices'] only together with gpu=False (the number of CPU "
            f"processes). Received: devices={user['devices']!r} with gpu={gpu!r}; choose GPUs "
            f"with `gpu=` instead."
        )
    return {
        "logger": False,
        "enable_checkpointing": any(isinstance(c, Checkpoint) for c in callbacks),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        **devices.as_trainer_kwargs(),
        **options,
        **user,
        "callbacks": callbacks,
    }


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


class Engine(TrainingCallback, PredictionCallback):
    """Binds a model to a way of training it; runs every ``train``/``evaluate``/``predict`` as a
    ``pytorch_lightning.Trainer`` run.

    Subclasses implement :meth:`train_batch`, :meth:`eval_batch` and optionally
    :meth:`predict_batch`. An engine is also a PyBlaze callback: its own hooks run before the
    user's callbacks.

    Inside :meth:`train_batch`, use :meth:`backward` and :meth:`optimizer_step` instead of
    ``loss.backward()`` and ``optimizer.step()`` so that precision plugins, DDP and gradient
    clipping apply; :attr:`iteration`, :attr:`num_iterations` and :attr:`is_last_iteration`
    describe the current batch.

    Args:
        model: The model to train.

    Example:
        >>> engine = SupervisedEngine(model)  # doctest: +SKIP
        >>> history = engine.train(train_loader, optimizer=opt, loss=nn.MSELoss())  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.iteration = 0
        self.num_iterations = 0
        self.is_last_iteration = False
        self._module: EngineModule | None = None
        self._interrupts = InterruptGuard()

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
        **kwargs: Any,
    ) -> History:
        """Trains the model and returns its :class:`History`.

        Args:
            train_data: The training batches (a DataLoader).
            val_data: Validation batches, evaluated after every epoch.
            epochs: The (maximum) number of epochs.
            callbacks: PyBlaze callbacks and/or ``pytorch_lightning`` callbacks, in any order.
            metrics: Metrics computed on the validation data: name -> function
                ``(y_pred, y_true) -> Tensor`` or ``torchmetrics.Metric``. They are recorded as
                ``val_<name>``; the ``loss`` keyword (if any) is recorded as ``val_loss``.
            gpu: ``'auto'``, ``False``, ``True``, a GPU index or a list of GPU indices.
            trainer_kwargs: Further ``pytorch_lightning.Trainer`` options (logger, precision, ...).
            ckpt_path: A Lightning checkpoint to resume from (e.g. ``last.ckpt`` written by
                ``ModelCheckpoint(save_last=True)``): weights, optimizer, epoch, callback states
                and the History are restored. Loaded with ``weights_only=True``.
            stop_on_nonfinite: Stop at the end of an epoch in which a batch loss was NaN or
                infinite (checked once per epoch, without extra synchronisation).
            **kwargs: Passed to :meth:`train_batch` on every batch (optimizer, loss, ...);
                those starting with ``eval_`` are passed to :meth:`eval_batch` instead, without
                the prefix, during validation (as in PyBlaze 2.x).

        Returns:
            The history of the run. Ctrl-C ends training cleanly: ``after_training`` runs and
            the History of the completed epochs is returned.
        """
        check_fit_arguments(train_data, val_data, epochs)
        kwargs, eval_kwargs = split_eval_kwargs(self, kwargs)
        self.check_train_kwargs(kwargs)
        val_metrics = MetricSet(metrics)  # checked even when there is no validation data
        if val_data is None:
            val_metrics = MetricSet()
        if val_data is not None and callable(kwargs.get("loss")):
            val_metrics.add("loss", kwargs["loss"])
        user_trainer = dict(trainer_kwargs or {})
        clip = {k: user_trainer.pop(k) for k in _CLIP_KEYS if k in user_trainer}
        module = EngineModule(
            self, val_metrics, train_kwargs=kwargs, eval_kwargs=eval_kwargs, clip=clip
        )
        return self._fit(
            module,
            lambda: module.epoch_metrics,
            train_data,
            val_data,
            epochs=epochs,
            callbacks=callbacks,
            gpu=gpu,
            trainer_kwargs=user_trainer,
            ckpt_path=ckpt_path,
            stop_on_nonfinite=stop_on_nonfinite,
        )

    def _fit(
        self,
        module: pl.LightningModule,
        collect: Callable[[], dict[str, Any]],
        train_data: Iterable,
        val_data: Iterable | None,
        *,
        epochs: int,
        callbacks: Sequence[object] | None,
        gpu: object,
        trainer_kwargs: Mapping[str, Any] | None,
        ckpt_path: str | os.PathLike | None,
        stop_on_nonfinite: bool = True,
        extra_callbacks: Sequence[pl.Callback] = (),
        loss_scale: float = 1.0,
        log_train_loss: bool = True,
        **options: Any,
    ) -> History:
        """Runs ``Trainer.fit`` on ``module`` with the History recorder and PyBlaze callbacks."""
        devices = resolve_gpu(gpu)
        pyblaze, lightning = split_callbacks(callbacks)
        if ckpt_path is not None:
            ckpt_path = str(require_file(ckpt_path, "a Lightning checkpoint (ckpt_path)"))
        bridge = PyBlazeBridge(self.model, [self, *pyblaze])
        recorder = HistoryRecorder(bridge, collect, log_train_loss, loss_scale, stop_on_nonfinite)
        all_callbacks = [*extra_callbacks, recorder, bridge, *lightning]
        options = trainer_options(
            devices, all_callbacks, trainer_kwargs, gpu, max_epochs=epochs, **options
        )
        start = time.monotonic()
        with self._running(module, devices), recorder.after_module_epoch_end(module):
            trainer = pl.Trainer(**options)
            try:
                trainer.fit(
                    module,
                    train_data,
                    val_data,
                    ckpt_path=ckpt_path,
                    weights_only=True if ckpt_path else None,
                )
            except SystemExit:  # Lightning exits after a graceful KeyboardInterrupt shutdown
                if not bridge.interrupted:
                    raise
        recorder.history.duration += time.monotonic() - start
        return recorder.history

    def evaluate(
        self,
        data: Iterable,
        metrics: Mapping[str, object] | None = None,
        callbacks: Sequence[object] | None = None,
        gpu: object = "auto",
        *,
        trainer_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Evaluation:
        """Computes ``metrics`` over all of ``data`` and returns them as an :class:`Evaluation`.

        Further keyword arguments are passed to :meth:`eval_batch` on every batch.

        Example:
            >>> model.evaluate(test_loader, metrics={"accuracy": X.accuracy})  # doctest: +SKIP
            Evaluation(accuracy=0.56820)
        """
        _check_loader(data, "data")
        reject_options(kwargs, EVALUATE_OPTIONS, f"{type(self).__name__}.evaluate")
        check_eval_kwargs(self, kwargs)
        devices = resolve_gpu(gpu)
        pyblaze, lightning = split_callbacks(callbacks)
        module = EngineModule(self, MetricSet(metrics), eval_kwargs=kwargs)
        bridge = PyBlazeBridge(self.model, [self, *pyblaze])
        options = trainer_options(devices, [bridge, *lightning], trainer_kwargs, gpu)
        with self._running(module, devices):
            pl.Trainer(**options).validate(module, data, verbose=False)
        values = module.epoch_metrics
        return Evaluation(dict(zip(values, to_host(list(values.values())), strict=True)))

    def predict(
        self,
        data: Iterable,
        callbacks: Sequence[object] | None = None,
        gpu: object = "auto",
        *,
        trainer_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Runs the model on every batch of ``data`` and returns the outputs concatenated in
        loader order (on the CPU).

        Example:
            >>> model.predict(test_loader).shape  # doctest: +SKIP
            torch.Size([10000, 10])
        """
        _check_loader(data, "data")
        reject_options(kwargs, PREDICT_OPTIONS, f"{type(self).__name__}.predict")
        devices = resolve_gpu(gpu)
        pyblaze, lightning = split_callbacks(callbacks)
        module = EngineModule(self, predict_kwargs=kwargs)
        bridge = PyBlazeBridge(self.model, [self, *pyblaze])
        options = trainer_options(devices, [bridge, *lightning], trainer_kwargs, gpu)
        with self._running(module, devices):
            outputs = pl.Trainer(**options).predict(module, data, return_predictions=True)
        if module.gathered_predictions is not None:  # several processes: all, in order
            return module.gathered_predictions
        return self.collate_predictions(outputs)

    @contextmanager
    def _running(self, module: pl.LightningModule, devices: DeviceConfig) -> Iterator[None]:
        self._module = module if isinstance(module, EngineModule) else None
        try:
            with quiet(), fast_cuda_checks(devices), self._interrupts:
                yield
        finally:
            self._module = None

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
        """Combines the outputs of :meth:`predict_batch` (default: concatenation)."""
        return collate(predictions)

    # helpers for train_batch
    def forward(self, x: Any) -> Any:
        """Calls the model: a tuple/list is unpacked into arguments, a dict into keywords."""
        if isinstance(x, (list, tuple)):
            return self.model(*x)
        if isinstance(x, Mapping):
            return self.model(**x)
        return self.model(x)

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagates ``loss`` (through Lightning's precision plugin and strategy when they
        apply; see :func:`~pyblaze_pl.nn.engine._module.runs_plainly`)."""
        if self._module is None:
            loss.backward()
        else:
            self._module.run_backward(loss)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Updates the parameters with ``optimizer`` (clipping gradients if configured), then
        zeroes their gradients."""
        self._interrupts.begin()  # Ctrl-C never leaves a half-applied update
        if self._module is None:
            optimizer.step()
            optimizer.zero_grad()
        else:
            self._module.step(optimizer)
        self._interrupts.end()
