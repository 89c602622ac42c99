"""The engine for ``(x, y)`` data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from pyblaze_pl.nn.engine._batches import check_positive_int
from pyblaze_pl.nn.engine._checks import check_fit_call, check_supervised
from pyblaze_pl.nn.engine._compat import check_batch_kwargs
from pyblaze_pl.nn.engine.base import Engine
from pyblaze_pl.nn.results import History

_OTHER_BATCHES = (
    "For batches of another shape (dicts, (x, y, weight), ...), subclass xnn.SupervisedEngine "
    "and override eval_batch(self, data) to return (y_pred, y_true) (and batch_loss for a loss "
    "that needs more), then set it as the model's __engine__: see 'Writing a small engine' in "
    "docs/migration.md."
)


class SupervisedEngine(Engine):
    """Trains on batches ``(x, y)``: ``loss(model(x), y)``.

    ``predict`` accepts batches of inputs only (a tensor or a 1-tuple) or ``(x, y)`` pairs, whose
    targets it ignores.

    Example:
        >>> class Model(xnn.Estimator, nn.Module):  # doctest: +SKIP
        ...     __engine__ = xnn.SupervisedEngine
        >>> model.fit(loader, optimizer=optim.Adam(model.parameters()), loss=nn.MSELoss())
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
        optimizer: torch.optim.Optimizer | None = None,
        loss: Callable[[Any, Any], torch.Tensor] | None = None,
        gradient_accumulation_steps: int | None = None,
        **kwargs: Any,
    ) -> History:
        """Trains the model; see :meth:`Engine.train` for the common arguments.

        Args:
            optimizer: The optimizer of the model's parameters.
            loss: The loss ``(y_pred, y_true) -> Tensor``; also reported as ``val_loss``.
            gradient_accumulation_steps: Batches per optimizer step. Each batch's loss is
                divided by this number for the backward pass; the optimizer also steps after
                the last batch of an epoch. ``micro_train_loss`` records each batch's own loss.
                Passed to :meth:`train_batch` only when given (default 1), so a v1-style
                ``train_batch`` override without this parameter still works.
        """
        arguments = {k: v for k, v in locals().items() if k not in ("self", "kwargs")}
        check_fit_call(self, {**kwargs, **arguments})
        check_supervised(self, optimizer, loss, arguments, kwargs)
        if not callable(loss):
            raise TypeError(
                f"Expected loss to be a callable (y_pred, y_true) -> Tensor, e.g. "
                f"nn.CrossEntropyLoss(). Received: {type(loss).__name__}."
            )
        if gradient_accumulation_steps is not None:
            check_positive_int("gradient_accumulation_steps", gradient_accumulation_steps)
            kwargs["gradient_accumulation_steps"] = gradient_accumulation_steps
        return super().train(
            train_data,
            val_data,
            epochs,
            callbacks,
            metrics,
            gpu,
            optimizer=optimizer,
            loss=loss,
            **kwargs,
        )

    def train_batch(
        self,
        data: Any,
        optimizer: torch.optim.Optimizer,
        loss: Callable[..., torch.Tensor],
        gradient_accumulation_steps: int = 1,
        **kwargs: Any,
    ) -> torch.Tensor:
        if self.iteration == 0:
            optimizer.zero_grad()
        batch_loss = self.batch_loss(data, loss, **kwargs)
        steps = gradient_accumulation_steps
        self.backward(batch_loss / steps if steps > 1 else batch_loss)
        if (self.iteration + 1) % steps == 0 or self.is_last_iteration:
            self.optimizer_step(optimizer)
        return batch_loss.detach()

    def check_train_kwargs(self, kwargs: dict[str, Any]) -> None:
        if type(self).train_batch is not SupervisedEngine.train_batch:  # a (v1-style) override
            super().check_train_kwargs(kwargs)  # checked against the method that runs
            return
        # Beyond its own arguments, train_batch passes keywords on to batch_loss.
        own = ("optimizer", "loss", "gradient_accumulation_steps")
        check_batch_kwargs(self, "batch_loss", {k: v for k, v in kwargs.items() if k not in own})

    def batch_loss(self, data: Any, loss: Callable[..., torch.Tensor]) -> torch.Tensor:
        """The loss of one training batch: ``loss(model(x), y)``."""
        return loss(*self.eval_batch(data))

    def eval_batch(self, data: Any) -> tuple[Any, Any]:
        if not isinstance(data, (list, tuple)) or len(data) != 2:
            raise ValueError(
                f"Expected SupervisedEngine batches to be pairs (x, y). Received: "
                f"{type(data).__name__}"
                + (f" of length {len(data)}. " if isinstance(data, (list, tuple)) else ". ")
                + _OTHER_BATCHES
            )
        x, y_true = data
        return self.forward(x), y_true

    def predict_batch(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, (list, tuple)) and len(data) in (1, 2):
            data = data[0]
        return self.forward(data)
