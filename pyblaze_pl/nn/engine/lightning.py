"""The engine for models that are LightningModules with their own ``training_step``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from pyblaze_pl.nn._metrics import MetricSet
from pyblaze_pl.nn.engine._distributed import unpadded_samples
from pyblaze_pl.nn.engine._module import log_validation_metrics
from pyblaze_pl.nn.engine.base import check_fit_arguments, check_positive_int
from pyblaze_pl.nn.engine.supervised import SupervisedEngine
from pyblaze_pl.nn.results import History


def logged_epoch_metrics(trainer: pl.Trainer) -> dict[str, torch.Tensor]:
    """The scalar epoch-level values the module has logged (``*_step`` values left out)."""
    return {
        name: value
        for name, value in trainer.callback_metrics.items()
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not name.endswith("_step")
    }


class _ValidationMetrics(pl.Callback):
    """Computes ``metrics`` on the validation batches of a LightningModule's own validation loop
    from ``engine.eval_batch`` (one extra forward pass per batch) and logs them as ``val_*``."""

    def __init__(self, engine: LightningEngine, metrics: MetricSet) -> None:
        self.engine = engine
        self.metrics = metrics

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.metrics.to(pl_module.device)
        self.metrics.start(unpadded_samples(trainer))  # DDP: count no sample twice

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        if trainer.sanity_checking:
            return
        self.metrics.update(*self.engine.eval_batch(batch))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        values = self.metrics.compute()
        if not trainer.sanity_checking:
            log_validation_metrics(pl_module, values)


class LightningEngine(SupervisedEngine):
    """Trains a ``LightningModule`` as it is: its ``training_step``, ``validation_step`` and
    ``configure_optimizers`` drive training; the engine adds PyBlaze's History, callbacks and
    metrics. ``evaluate`` and ``predict`` work on ``(x, y)`` batches as :class:`SupervisedEngine`.

    It is the default engine of ``class Model(xnn.Estimator, pl.LightningModule)`` without an
    ``__engine__``.

    History holds ``micro_train_loss`` (the losses ``training_step`` returns), ``train_loss``
    (their per-epoch mean, unless the module logs a ``train_loss`` of its own), every
    epoch-level value the module logs (``self.log``) and ``val_<name>`` for ``metrics``.

    Example:
        >>> class Lit(xnn.Estimator, pl.LightningModule):  # doctest: +SKIP
        ...     def training_step(self, batch, batch_idx): ...
        ...     def configure_optimizers(self): ...
        >>> history = Lit().fit(train_loader, val_data=val_loader, epochs=5)  # doctest: +SKIP
    """

    def train(
        self,
        train_data: Iterable,
        val_data: Iterable | None = None,
        epochs: int = 20,
        callbacks: Sequence[object] | None = None,
        metrics: Mapping[str, object] | None = None,
        gpu: object = "auto",
        *,
        gradient_accumulation_steps: int = 1,
        trainer_kwargs: Mapping[str, Any] | None = None,
        ckpt_path: str | os.PathLike | None = None,
        stop_on_nonfinite: bool = True,
    ) -> History:
        """Trains the LightningModule; see :meth:`Engine.train`.

        Args:
            gradient_accumulation_steps: Passed to the Trainer as ``accumulate_grad_batches``.
        """
        check_fit_arguments(train_data, val_data, epochs)
        steps = gradient_accumulation_steps
        check_positive_int("gradient_accumulation_steps", steps)
        metric_set = MetricSet(metrics)  # checked even when there is no validation data
        extra = [_ValidationMetrics(self, metric_set)] if len(metric_set) and val_data else []
        module = self.model
        return self._fit(
            module,
            lambda: logged_epoch_metrics(module.trainer),
            train_data,
            val_data,
            epochs=epochs,
            callbacks=callbacks,
            gpu=gpu,
            trainer_kwargs=trainer_kwargs,
            ckpt_path=ckpt_path,
            stop_on_nonfinite=stop_on_nonfinite,
            extra_callbacks=extra,
            loss_scale=steps,
            log_train_loss=False,
            accumulate_grad_batches=steps,
        )
