"""Validation metrics computed over a whole data set, one batch at a time.

:func:`to_metric` turns each entry of the user's ``metrics={name: metric}`` into a fresh
:class:`torchmetrics.Metric`: the engine calls ``update(y_pred, y_true)`` once per batch and
``compute()`` once per epoch. Its states reduce over DDP ranks (``sum`` or ``cat``), and the
caller moves it to the data's device (``metric.to(device)``), as any torchmetrics metric.
"""

import copy
import functools
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities import dim_zero_cat

from pyblaze_pl._lightning.compat import apply_except, metric_defaults
from pyblaze_pl.nn.engine._checks import metric_error
from pyblaze_pl.nn.functional import _wide_float

# reduction='mean' losses whose mean is (sum of the unreduced loss) / (count of its elements)
_MEAN_LOSSES = (
    nn.CrossEntropyLoss,
    nn.NLLLoss,
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
    nn.KLDivLoss,
)


def to_metric(name: str, metric: object) -> Metric | MetricCollection:
    """A fresh streaming metric for ``metrics[name]``.

    - a torchmetrics ``Metric`` or ``MetricCollection``: a reset clone (the user's object is
      never changed or moved);
    - ``X.accuracy``, ``X.precision``, ``X.recall``, ``X.f1_score`` (also in a
      ``functools.partial``, e.g. ``c=2``): summed counts, exactly the function's value on the
      concatenated batches;
    - a known ``torch.nn`` loss with ``reduction='mean'`` (or ``'batchmean'``) and no class
      weights: a streaming mean, equal to one call on the concatenated batches;
    - any other callable ``(y_pred, y_true)``: keeps every batch and calls it once on the
      concatenation (PyBlaze's semantics; memory grows with the data).

    Args:
        name: the metric's key, used in error messages.
        metric: the user's metric.

    Returns:
        A metric whose ``compute()`` returns a 0-dim tensor or a dict of them.

    Raises:
        TypeError: ``metric`` is not callable, or a ``partial`` has arguments its function lacks.

    Example:
        >>> m = to_metric("accuracy", X.accuracy)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]))
        >>> m.compute()
        tensor(0.5000)
    """
    if isinstance(metric, (Metric, MetricCollection)):
        clone = metric.clone()
        clone.reset()
        return clone
    func, args, kwargs = _unwrap_partial(metric)
    if hasattr(func, "streaming") and not args:
        try:
            inspect.signature(func).bind(None, None, **kwargs)
        except TypeError as e:
            raise TypeError(
                f"Expected metrics[{name!r}] to pass only arguments of {func.__name__}"
                f"{inspect.signature(func)}. Received: {metric!r} ({e})."
            ) from None
        return func.streaming(**kwargs)
    if _is_streamable_loss(metric):
        return _LossMean(metric)
    if callable(metric):
        return _Concatenated(name, metric)
    raise TypeError(
        f"Expected metrics[{name!r}] to be a callable (y_pred, y_true) -> Tensor or a "
        f"torchmetrics.Metric. Received: {metric!r} ({type(metric).__name__})."
    )


def _unwrap_partial(metric: object) -> tuple[object, tuple, dict]:
    if isinstance(metric, functools.partial):
        return metric.func, metric.args, metric.keywords
    return metric, (), {}


def _is_streamable_loss(metric: object) -> bool:
    """One of ``_MEAN_LOSSES`` (exactly, not a subclass) averaging over elements, unweighted."""
    if type(metric) not in _MEAN_LOSSES or getattr(metric, "weight", None) is not None:
        return False
    return metric.reduction == "mean" or (
        type(metric) is nn.KLDivLoss and metric.reduction == "batchmean"
    )


class _LossMean(Metric):
    """Streaming mean of a loss: sum of its unreduced values over the count of contributing ones."""

    full_state_update = False

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.ignore_index = getattr(loss, "ignore_index", None)  # CrossEntropyLoss, NLLLoss
        self.batchmean = loss.reduction == "batchmean"  # KLDivLoss: sum / batch size
        self.loss = copy.deepcopy(loss)
        self.loss.reduction = "none"
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, y_pred: Tensor, y_true: Tensor) -> None:
        values = self.loss(y_pred.detach(), y_true.detach())
        self.total += values.sum(dtype=self.total.dtype)
        self.count += self._count(y_pred, y_true, values)

    def _count(self, y_pred: Tensor, y_true: Tensor, values: Tensor) -> Tensor | int:
        if self.ignore_index is not None and not y_true.is_floating_point():  # class indices
            return (y_true != self.ignore_index).sum()
        if self.batchmean:
            return len(y_pred)
        return values.numel()

    def compute(self) -> Tensor:
        return self.total / self.count

    def _apply(self, fn: Callable, exclude_state: Any = ()) -> nn.Module:
        # Moves `total` itself: float64 on every device that has it, float32 on Apple MPS.
        this, kept = apply_except(self, fn, exclude_state, keep="total")
        if kept:
            this.total = _move_sum(this.total, this.device)
            defaults = metric_defaults(this)
            defaults["total"] = _move_sum(defaults["total"], this.device)
        return this


def _move_sum(total: Tensor, device: torch.device) -> Tensor:
    """``total`` on ``device`` in its widest float: narrow before moving, widen after."""
    dtype = _wide_float(device)
    if dtype == torch.float32:
        return total.to(dtype).to(device)
    return total.to(device).to(dtype)


class _Concatenated(Metric):
    """Keeps every batch's outputs and targets; calls ``fn`` once on their concatenation."""

    full_state_update = False

    def __init__(self, name: str, fn: Callable[[Tensor, Tensor], Any]) -> None:
        super().__init__()
        self.name = name
        # Not a submodule: moving this metric must not move the user's (loss) module.
        object.__setattr__(self, "fn", fn)
        self.add_state("y_pred", [], dist_reduce_fx="cat")
        self.add_state("y_true", [], dist_reduce_fx="cat")

    def update(self, y_pred: Tensor, y_true: Tensor) -> None:
        if not (isinstance(y_pred, Tensor) and isinstance(y_true, Tensor)):
            raise TypeError(
                f"Expected tensors (y_pred, y_true) for metrics[{self.name!r}]. "
                f"Received: ({type(y_pred).__name__}, {type(y_true).__name__})."
            )
        self.y_pred.append(y_pred.detach())
        self.y_true.append(y_true.detach())

    def compute(self) -> Tensor | dict[str, Tensor]:
        value = self.fn(dim_zero_cat(self.y_pred), dim_zero_cat(self.y_true))
        if isinstance(value, Mapping):
            return {key: self._as_tensor(v) for key, v in value.items()}
        return self._as_tensor(value)

    def _as_tensor(self, value: object) -> Tensor:
        if isinstance(value, Tensor):
            return value
        if isinstance(value, numbers.Real):
            return torch.tensor(float(value), device=self.device)
        raise TypeError(
            f"Expected metrics[{self.name!r}] to return a Tensor, a number or a dict of them. "
            f"Received: {value!r} ({type(value).__name__})."
        )


class MetricSet(nn.Module):
    """Named metrics updated together; :meth:`compute` returns flat ``name -> tensor`` values
    (a dict-valued metric ``m`` gives ``m_<key>``) and resets the metrics.

    :meth:`start` may cap how many samples count (DDP: the rest of this rank's share is padding
    with repeated samples), so that no sample is counted twice."""

    def __init__(self, metrics: Mapping[str, object] | None = None) -> None:
        super().__init__()
        if metrics is not None and not isinstance(metrics, Mapping):
            raise TypeError(
                f"Expected metrics to be a dict of name -> metric function or torchmetrics "
                f"Metric. Received: {type(metrics).__name__}."
            )
        metrics = dict(metrics or {})
        self.names = list(metrics)
        self.metrics = nn.ModuleList(to_metric(name, m) for name, m in metrics.items())
        self._remaining: int | None = None

    def add(self, name: str, metric: object) -> None:
        self.names.append(name)
        self.metrics.append(to_metric(name, metric))

    def __len__(self) -> int:
        return len(self.names)

    def start(self, real_samples: int | None = None) -> None:
        """Begins an epoch in which only the first ``real_samples`` samples count (all: None)."""
        self._remaining = real_samples

    def update(self, y_pred: Any, y_true: Any) -> None:
        if self._remaining is not None:
            if len(y_true) > self._remaining:
                y_pred, y_true = y_pred[: self._remaining], y_true[: self._remaining]
            self._remaining -= len(y_true)
        for name, metric in zip(self.names, self.metrics, strict=True):
            try:
                metric.update(y_pred, y_true)
            except Exception as e:  # named, with what it received
                new = metric_error(e, name, y_pred, y_true, "on a validation batch")
                if new is e:
                    raise
                raise new from e

    def compute(self) -> dict[str, Tensor]:
        values: dict[str, Tensor] = {}
        for name, metric in zip(self.names, self.metrics, strict=True):
            try:
                value = metric.compute()
            except Exception as e:
                shapes = _received(metric)
                new = metric_error(e, name, *shapes, "on the validation outputs, concatenated")
                if new is e:
                    raise
                raise new from e
            metric.reset()
            named = value.items() if isinstance(value, Mapping) else [(None, value)]
            for key, v in named:
                full = name if key is None else f"{name}_{key}"
                if isinstance(v, Tensor) and v.numel() != 1:
                    raise ValueError(
                        f"Expected metrics[{name!r}] to compute one number"
                        f"{'' if key is None else f' per key (key {key!r})'}. Received: a "
                        f"tensor of shape {tuple(v.shape)}. Reduce it to one number, or return "
                        f"a dict of numbers (each recorded as {name}_<key>)."
                    )
                values[full] = v
        return values


def _received(metric: Metric) -> tuple[Any, Any]:
    """What a :class:`_Concatenated` metric's function received (its concatenated inputs)."""
    if isinstance(metric, _Concatenated) and metric.y_pred and metric.y_true:
        return dim_zero_cat(metric.y_pred), dim_zero_cat(metric.y_true)
    return None, None
