"""The engine for models that are LightningModules with their own ``training_step``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyblaze_pl import _lightning
from pyblaze_pl._lightning import provides_validation
from pyblaze_pl.nn._metrics import MetricSet
from pyblaze_pl.nn.engine._batches import check_fit_arguments, check_positive_int
from pyblaze_pl.nn.engine._checks import check_fit_call, check_own_steps_call
from pyblaze_pl.nn.engine.supervised import SupervisedEngine
from pyblaze_pl.nn.results import History


class LightningEngine(SupervisedEngine):
    """Trains a ``LightningModule`` as it is: its ``training_step``, ``validation_step`` and
    ``configure_optimizers`` drive training; the engine adds PyBlaze's History, callbacks and
    metrics. ``evaluate`` and ``predict`` work on ``(x, y)`` batches as :class:`SupervisedEngine`.

    It is the default engine of ``class Model(xnn.Estimator, pl.LightningModule)`` without an
    ``__engine__``.

    History holds ``micro_train_loss`` (the losses ``training_step`` returns), ``train_loss``
    (their per-epoch mean, whatever the module logs under that name), every
    epoch-level value the module logs (``self.log``) and ``val_<name>`` for ``metrics``.

    Example:
        >>> class Lit(xnn.Estimator, pl.LightningModule):  # doctest: +SKIP
        ...     def training_step(self, batch, batch_idx): ...
        ...     def configure_optimizers(self): ...
        >>> history = Lit().fit(train_loader, val_data=val_loader, epochs=5)  # doctest: +SKIP
    """

    trains_itself = True

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
        runner: str = "auto",
        **kwargs: Any,
    ) -> History:
        """Trains the LightningModule; see :meth:`Engine.train`.

        Args:
            gradient_accumulation_steps: Passed to the Trainer as ``accumulate_grad_batches``.
            runner: ``'auto'`` or ``'trainer'``: a LightningModule's own steps always run on
                Lightning's Trainer (``'fabric'`` is refused).
            **kwargs: None are accepted: the module's ``training_step`` and
                ``configure_optimizers`` train it. Given ones are refused with the closest
                argument of ``fit``.
        """
        check_own_steps_call(self, kwargs, val_data is not None)
        check_fit_call(self, locals())
        check_fit_arguments(train_data, val_data, epochs)
        check_positive_int("gradient_accumulation_steps", gradient_accumulation_steps)
        metric_set = MetricSet(metrics)  # checked even when there is no validation data
        return _lightning.start(self, gpu, callbacks, trainer_kwargs, runner, train_data).fit(
            train_data,
            val_data,
            epochs=epochs,
            metrics=metric_set if provides_validation(train_data, val_data) else MetricSet(),
            ckpt_path=ckpt_path,
            stop_on_nonfinite=stop_on_nonfinite,
            accumulate_grad_batches=gradient_accumulation_steps,
        )
