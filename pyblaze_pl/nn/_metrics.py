"""Validation metrics computed over a whole data set, one batch at a time.

:func:`to_metric` turns each entry of the user's ``metrics={name: metric}`` into a fresh
streaming metric (a :class:`torchmetrics.Metric`, see :mod:`pyblaze_pl.nn._streaming`): the
engine calls ``update(y_pred, y_true)`` once per batch and ``compute()`` once per epoch. Its
states reduce over DDP ranks (``sum`` or ``cat``), and the caller moves it to the data's device
(``metric.to(device)``), as any torchmetrics metric. torchmetrics is imported when a call first
uses a metric.
"""

import functools
import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from pyblaze_pl._errors import metric_error
from pyblaze_pl._signals import deferred_sigint


def to_metric(name: str, metric: object) -> Any:
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
    with deferred_sigint():
        from pyblaze_pl.nn import _streaming as streaming  # torchmetrics, on first use

    if isinstance(metric, (streaming.Metric, streaming.MetricCollection)):
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
    if streaming.is_streamable_loss(metric):
        return streaming.LossMean(metric)
    if callable(metric):
        return streaming.Concatenated(name, metric)
    raise TypeError(
        f"Expected metrics[{name!r}] to be a callable (y_pred, y_true) -> Tensor or a "
        f"torchmetrics.Metric. Received: {metric!r} ({type(metric).__name__})."
    )


def _unwrap_partial(metric: object) -> tuple[object, tuple, dict]:
    if isinstance(metric, functools.partial):
        return metric.func, metric.args, metric.keywords
    return metric, (), {}


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
                from pyblaze_pl.nn._streaming import received

                shapes = received(metric)
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
