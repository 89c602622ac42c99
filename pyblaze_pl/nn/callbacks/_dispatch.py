"""The one Lightning callback that calls PyBlaze callbacks' hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from torch import nn

from pyblaze_pl.nn.callbacks.base import CallbackException, PredictionCallback, TrainingCallback
from pyblaze_pl.nn.results import Evaluation


def batch_loss(outputs: Any) -> Any:
    """The loss in what a ``training_step`` returned (a tensor or a dict with ``'loss'``)."""
    return outputs.get("loss") if isinstance(outputs, dict) else outputs


class PyBlazeBridge(pl.Callback):
    """Calls PyBlaze ``TrainingCallback``/``PredictionCallback`` hooks from Lightning's hooks.

    ``before_epoch`` and ``after_epoch`` may raise :class:`CallbackException`: training then stops
    at the end of the current epoch and the message is printed after ``after_training``.
    ``after_epoch`` is called by the engine's epoch end, once the epoch's metrics are known.
    """

    def __init__(self, model: nn.Module, callbacks: Sequence[object]) -> None:
        self.model = model
        self.training = [c for c in callbacks if isinstance(c, TrainingCallback)]
        self.prediction = [c for c in callbacks if isinstance(c, PredictionCallback)]
        self.stop_reason: CallbackException | None = None
        self.interrupted = False
        self._training_started = False
        self._prints = True
        self._restored: dict[str, Any] = {}

    def _stop(self, trainer: pl.Trainer, exception: CallbackException) -> None:
        self.stop_reason = exception
        trainer.should_stop = True

    def sync_stop(self, trainer: pl.Trainer) -> None:
        """Several processes (DDP): if one stops, all stop, at the same epoch."""
        if trainer.world_size == 1:
            return
        stop = trainer.strategy.reduce_boolean_decision(trainer.should_stop, all=False)
        if stop and self.stop_reason is None:
            self.stop_reason = CallbackException("Training stopped: another process asked to.")
        trainer.should_stop = stop

    def request_stop(self, trainer: pl.Trainer, message: str) -> None:
        """Stops training at the end of this epoch; ``message`` is printed when it has ended."""
        self._stop(trainer, CallbackException(message))

    # training
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._training_started = True
        self._prints = trainer.is_global_zero
        for c in self.training:
            c.before_training(self.model, trainer.max_epochs)
        for i, c in enumerate(self.training):  # after the reset in before_training
            state = self._restored.get(f"{i}:{type(c).__qualname__}")
            if state is not None:
                c.load_state_dict(state)
        self._restored = {}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        try:
            for c in self.training:
                c.before_epoch(trainer.current_epoch, trainer.num_training_batches)
        except CallbackException as e:
            self._stop(trainer, e)
        self.sync_stop(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any
    ) -> None:
        loss = batch_loss(outputs)
        for c in self.training:
            c.after_batch(loss)

    def after_epoch(self, trainer: pl.Trainer, metrics: Evaluation) -> None:
        try:
            for c in self.training:
                c.after_epoch(metrics)
        except CallbackException as e:
            self._stop(trainer, e)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.end_training()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True
            self.stop_reason = CallbackException(
                f"Training interrupted (KeyboardInterrupt) in epoch {trainer.current_epoch + 1}; "
                f"returning the History of the completed epochs."
            )
            self.end_training()

    # state of PyBlaze callbacks (EarlyStopping counters, ...) in Lightning checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            f"{i}:{type(c).__qualname__}": c.state_dict()
            for i, c in enumerate(self.training)
            if callable(getattr(c, "state_dict", None))
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = state_dict

    def end_training(self) -> None:
        if not self._training_started:
            return
        self._training_started = False
        for c in self.training:
            c.after_training()
        if self.stop_reason is not None and self.stop_reason.verbose and self._prints:
            print(self.stop_reason)

    # evaluation (validation inside fit, and evaluate/predict)
    def _before(self, trainer: pl.Trainer, num_batches: Any) -> None:
        if trainer.sanity_checking:
            return
        total = sum(num_batches) if isinstance(num_batches, list) else num_batches
        for c in self.prediction:
            c.before_predictions(self.model, int(total))

    def _batch_end(self, trainer: pl.Trainer) -> None:
        if not trainer.sanity_checking:
            for c in self.prediction:
                c.after_batch(None)  # as PyBlaze: no loss during predictions

    def _after(self, trainer: pl.Trainer) -> None:
        if not trainer.sanity_checking:
            for c in self.prediction:
                c.after_predictions()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._before(trainer, trainer.num_val_batches)

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._batch_end(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._after(trainer)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._before(trainer, trainer.num_predict_batches)

    def on_predict_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._batch_end(trainer)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._after(trainer)
