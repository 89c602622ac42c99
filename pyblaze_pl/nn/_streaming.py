"""The streaming metrics behind :class:`~pyblaze_pl.nn._metrics.MetricSet`, as torchmetrics
metrics (imported when a call first uses metrics: ``import pyblaze_pl.nn`` does not load
torchmetrics)."""

import copy
import numbers
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities import dim_zero_cat

from pyblaze_pl._lightning.compat import apply_except, metric_defaults
from pyblaze_pl._tensors import wide_float

__all__ = [
    "Concatenated",
    "LossMean",
    "Metric",
    "MetricCollection",
    "SummedCounts",
    "is_streamable_loss",
    "received",
]

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


def is_streamable_loss(metric: object) -> bool:
    """One of ``_MEAN_LOSSES`` (exactly, not a subclass) averaging over elements, unweighted."""
    if type(metric) not in _MEAN_LOSSES or getattr(metric, "weight", None) is not None:
        return False
    return metric.reduction == "mean" or (
        type(metric) is nn.KLDivLoss and metric.reduction == "batchmean"
    )


class SummedCounts(Metric):
    """Streams a built-in metric: sums its counts over batches, applies its formula at compute."""

    full_state_update = False

    def __init__(
        self,
        counts: Callable[..., Tensor],
        value: Callable[[Tensor], Tensor],
        num_counts: int,
        **kwargs: int,
    ) -> None:
        super().__init__()
        self._counts = partial(counts, **kwargs)
        self._value = value
        self.add_state("counts", torch.zeros(num_counts, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, y_pred: Tensor, y_true: Tensor) -> None:
        self.counts += self._counts(y_pred, y_true)

    def compute(self) -> Tensor:
        return self._value(self.counts)


class LossMean(Metric):
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
    dtype = wide_float(device)
    if dtype == torch.float32:
        return total.to(dtype).to(device)
    return total.to(device).to(dtype)


class Concatenated(Metric):
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


def received(metric: Metric) -> tuple[Any, Any]:
    """What a :class:`Concatenated` metric's function received (its concatenated inputs)."""
    if isinstance(metric, Concatenated) and metric.y_pred and metric.y_true:
        return dim_zero_cat(metric.y_pred), dim_zero_cat(metric.y_true)
    return None, None
