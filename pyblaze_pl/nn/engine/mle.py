"""PyBlaze 2.x's ``MLEEngine``: a loss over the model's outputs, the targets and/or the inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from pyblaze_pl.nn.callbacks.base import TrainingCallback
from pyblaze_pl.nn.callbacks.compat import read_values
from pyblaze_pl.nn.engine._loss_inputs import AllInputs, LossInputs, unwrap, wrap_metrics
from pyblaze_pl.nn.engine.supervised import SupervisedEngine
from pyblaze_pl.nn.results import Evaluation, History


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(
            f"Expected {name} to be a bool. Received: {value!r} ({type(value).__name__})."
        )


def _with_kwarg_callbacks(callbacks: Sequence[object], kwargs: Mapping[str, Any]) -> list[object]:
    """``callbacks`` and the callbacks among ``kwargs``, each once (PyBlaze 2.x registered one
    passed twice, e.g. as ``temperature`` and ``eval_temperature``, twice)."""
    result = list(callbacks)
    for value in kwargs.values():
        if isinstance(value, TrainingCallback) and not any(value is c for c in result):
            result.append(value)
    return result


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


class MLEEngine(SupervisedEngine):
    """Minimises a loss of the model's outputs and, optionally, the targets and the inputs
    (PyBlaze 2.x's ``MLEEngine``), for supervised and unsupervised models.

    The loss is called as ``loss(*outputs, *targets, *inputs)``: ``outputs`` are the model's
    outputs (a tuple is unpacked), ``targets`` the batch's targets if ``uses_data_target``,
    ``inputs`` the model's inputs if ``uses_data_input``. Further keyword arguments of
    ``train`` are passed to the model's ``forward`` on every batch, those starting with
    ``eval_`` (without the prefix) during validation and ``evaluate``. A
    :class:`~pyblaze_pl.nn.ValueTrainingCallback` given as such an argument is registered as a
    callback (once, also when passed twice) and passed as its current ``read()`` value.

    Training follows :class:`SupervisedEngine` (also its gradient accumulation, which steps
    after every ``k`` batches, not after the first batch of each group as PyBlaze 2.x did).
    Validation metrics, ``val_loss`` included, receive the loss inputs: with
    ``uses_data_input=True`` all of them, ``metric(*outputs, *targets, *inputs)``, called once on
    the whole validation set as in PyBlaze 2.x (e.g. a VAE's ``val_loss``); otherwise
    ``(y_pred, y_true)``, which needs exactly two loss inputs (e.g. outputs and targets, or a
    model returning two tensors) and streams the standard losses and metrics batch by batch.
    ``evaluate`` and ``predict`` take PyBlaze's ``iterations=k`` (the first ``k`` batches, e.g.
    of an endless noise loader).

    Args:
        model: The model to train.
        expects_data_target: Whether batches are ``(x, y)`` pairs; if ``False`` the whole batch
            is the model's input.
        uses_data_target: Whether the loss receives the targets (only with
            ``expects_data_target``).
        uses_data_input: Whether the loss receives the model's inputs.

    Example:
        >>> # a flow whose forward returns (z, log_det), trained on batches without targets
        >>> engine = xnn.MLEEngine(flow, expects_data_target=False)  # doctest: +SKIP
        >>> history = engine.train(loader, optimizer=opt, loss=flow_nll)  # doctest: +SKIP
        >>> # as an Estimator's engine; temperature= reaches forward in training only
        >>> class Model(xnn.Estimator, nn.Module):  # doctest: +SKIP
        ...     __engine__ = xnn.MLEEngine
        >>> model.fit(loader, optimizer=opt, loss=loss, temperature=2.0)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        expects_data_target: bool = True,
        uses_data_target: bool = True,
        uses_data_input: bool = False,
    ) -> None:
        super().__init__(model)
        _check_flag("expects_data_target", expects_data_target)
        _check_flag("uses_data_target", uses_data_target)
        _check_flag("uses_data_input", uses_data_input)
        self.expects_data_target = expects_data_target
        self.uses_data_target = uses_data_target and expects_data_target
        self.uses_data_input = uses_data_input
        self._packer = LossInputs()

    @property
    def passes_all_loss_inputs(self) -> bool:
        """Whether validation metrics receive every loss input (with ``uses_data_input``)."""
        return self.uses_data_input

    def train(
        self,
        train_data: Iterable,
        val_data: Iterable | None = None,
        epochs: int = 20,
        callbacks: Sequence[object] | None = None,
        metrics: Mapping[str, object] | None = None,
        gpu: object = "auto",
        *,
        optimizer: torch.optim.Optimizer | None = None,
        loss: Callable[..., torch.Tensor] | None = None,
        gradient_accumulation_steps: int | None = None,
        **kwargs: Any,
    ) -> History:
        """Trains the model; see :meth:`SupervisedEngine.train`.

        Args:
            **kwargs: Passed to the model's ``forward`` on every batch; ``eval_``-prefixed ones
                (without the prefix) during validation. Callbacks among them are registered.
                PyBlaze 2.x's ``val_iterations=k`` validates on the first ``k`` batches of
                ``val_data``; ``eval_every=n`` with an endless training loader trains
                ``epochs // n`` epochs of ``n`` batches, validating after each.
        """
        if callbacks is None or isinstance(callbacks, (list, tuple)):
            callbacks = _with_kwarg_callbacks(callbacks or [], kwargs)
        if self.passes_all_loss_inputs:
            metrics = wrap_metrics(metrics, self._packer)
            loss = AllInputs(loss, self._packer) if callable(loss) else loss
        return super().train(
            train_data,
            val_data,
            epochs,
            callbacks,
            metrics,
            gpu,
            optimizer=optimizer,
            loss=loss,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )

    def evaluate(
        self,
        data: Iterable,
        metrics: Mapping[str, object] | None = None,
        callbacks: Sequence[object] | None = None,
        gpu: object = "auto",
        **kwargs: Any,
    ) -> Evaluation:
        """Computes ``metrics`` on ``data``; see :meth:`Engine.evaluate` (``iterations=k``
        included). Further keyword arguments go to the model's ``forward``."""
        if self.passes_all_loss_inputs:
            metrics = wrap_metrics(metrics, self._packer)
        return super().evaluate(data, metrics, callbacks, gpu, **kwargs)

    # batch processing
    def batch_loss(
        self, data: Any, loss: Callable[..., torch.Tensor], **kwargs: Any
    ) -> torch.Tensor:
        return unwrap(loss)(*self._loss_inputs(data, kwargs))

    def eval_batch(self, data: Any, **kwargs: Any) -> tuple[Any, Any]:
        inputs = self._loss_inputs(data, kwargs)
        if self.passes_all_loss_inputs:
            return self._packer.pack(inputs)
        if len(inputs) != 2:
            raise ValueError(
                f"Expected two loss inputs (y_pred, y_true) for validation metrics and val_loss "
                f"with MLEEngine(expects_data_target={self.expects_data_target}, "
                f"uses_data_target={self.uses_data_target}, "
                f"uses_data_input={self.uses_data_input}). Received: {len(inputs)} "
                f"(model outputs, then targets, then inputs). Train without val_data/metrics, "
                f"or make the model return the values a two-argument metric needs."
            )
        return inputs

    def predict_batch(self, data: Any, **kwargs: Any) -> Any:
        x, _ = self._split(data, for_prediction=True)
        return self._forward(x, read_values(kwargs))

    # helpers
    def _split(self, data: Any, for_prediction: bool = False) -> tuple[Any, Any]:
        """``(x, target)`` of a batch; for predictions a batch may also hold only ``x``."""
        if not self.expects_data_target:
            return data, None
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return data[0], data[1]
        if for_prediction:
            is_one = isinstance(data, (list, tuple)) and len(data) == 1
            return (data[0] if is_one else data), None
        raise ValueError(
            f"Expected batches (x, y) with expects_data_target=True. Received: "
            f"{type(data).__name__}"
            + (f" of length {len(data)}." if isinstance(data, (list, tuple)) else ".")
            + " Use MLEEngine(model, expects_data_target=False) for batches without targets."
        )

    def _forward(self, x: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(x, (list, tuple)):
            return self.model(*x, **kwargs)
        if isinstance(x, Mapping):
            return self.model(**x, **kwargs)
        return self.model(x, **kwargs)

    def _loss_inputs(self, data: Any, kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
        """``(*outputs, *targets, *inputs)`` as PyBlaze 2.x passes them to the loss."""
        x, target = self._split(data)
        inputs = _as_tuple(self._forward(x, read_values(kwargs)))
        if self.uses_data_target:
            inputs += _as_tuple(target)
        if self.uses_data_input:
            inputs += _as_tuple(x)
        return inputs
