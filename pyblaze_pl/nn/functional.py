"""Functions with PyBlaze semantics (``import pyblaze_pl.nn.functional as X``).

Metrics take ``(y_pred, y_true)`` and return a 0-dim float tensor on the input device.
Classification metrics accept ``y_pred`` as logits or probabilities ``[N, C]`` (argmax), class
indices ``[N]`` (integer, used as they are) or binary probabilities ``[N]`` (float, rounded).
Undefined values (0/0) are NaN. Each classification metric is a formula over a few counts, so
its ``streaming`` attribute builds a :class:`torchmetrics.Metric` that sums the counts over
batches and gives exactly the value of the function on the concatenated batches.

The rest are PyBlaze's helpers for generative models: noise (:func:`generate_noise`),
straight-through estimators (:func:`gumbel_softmax`, :func:`softround`) and standard densities
(:func:`log_prob_standard_normal`, :func:`log_prob_standard_gmm`).
"""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from pyblaze_pl._signals import deferred_sigint
from pyblaze_pl._tensors import wide_float
from pyblaze_pl.nn._generative_functional import (
    generate_noise,
    gumbel_softmax,
    log_prob_standard_gmm,
    log_prob_standard_normal,
    softround,
)

__all__ = [
    "accuracy",
    "average_precision",
    "f1_score",
    "generate_noise",
    "gumbel_softmax",
    "log_prob_standard_gmm",
    "log_prob_standard_normal",
    "pr_auc_score",
    "precision",
    "recall",
    "roc_auc_score",
    "softround",
]

_CLASS_PREDICTIONS = "[N, C] (logits or probabilities), [N] (class indices or binary probabilities)"


def accuracy(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Fraction of predictions equal to the targets.

    Args:
        y_pred: logits or probabilities ``[N, C]``, class indices ``[N]`` or binary
            probabilities ``[N]`` (rounded).
        y_true: class indices ``[N]``.

    Returns:
        A 0-dim float tensor; NaN for empty inputs.

    Example:
        >>> X.accuracy(torch.tensor([[2.0, 0.1], [0.3, 0.9]]), torch.tensor([0, 0]))
        tensor(0.5000)
    """
    return _accuracy_value(_accuracy_counts(y_pred, y_true))


def precision(y_pred: Tensor, y_true: Tensor, c: int = 1) -> Tensor:
    """Fraction of the predictions of class ``c`` that are correct: ``tp / (tp + fp)``.

    Args:
        y_pred: logits or probabilities ``[N, C]``, class indices ``[N]`` or binary
            probabilities ``[N]`` (rounded).
        y_true: class indices ``[N]``.
        c: the class treated as positive.

    Returns:
        A 0-dim float tensor; NaN when class ``c`` is never predicted.

    Example:
        >>> X.precision(torch.tensor([1, 1, 0, 1]), torch.tensor([1, 0, 0, 1]))
        tensor(0.6667)
    """
    return _precision_value(_class_counts(y_pred, y_true, c))


def recall(y_pred: Tensor, y_true: Tensor, c: int = 1) -> Tensor:
    """Fraction of the targets of class ``c`` that are predicted: ``tp / (tp + fn)``.

    Args:
        y_pred: logits or probabilities ``[N, C]``, class indices ``[N]`` or binary
            probabilities ``[N]`` (rounded).
        y_true: class indices ``[N]``.
        c: the class treated as positive.

    Returns:
        A 0-dim float tensor; NaN when class ``c`` never occurs in ``y_true``.

    Example:
        >>> X.recall(torch.tensor([0.9, 0.2, 0.4, 0.7]), torch.tensor([1, 1, 0, 1]))
        tensor(0.6667)
    """
    return _recall_value(_class_counts(y_pred, y_true, c))


def f1_score(y_pred: Tensor, y_true: Tensor, c: int = 1) -> Tensor:
    """Harmonic mean of precision and recall of class ``c``: ``2 p r / (p + r)``, as PyBlaze.

    Args:
        y_pred: logits or probabilities ``[N, C]``, class indices ``[N]`` or binary
            probabilities ``[N]`` (rounded).
        y_true: class indices ``[N]``.
        c: the class treated as positive.

    Returns:
        A 0-dim float tensor; NaN when precision or recall is undefined (class ``c`` never
        predicted, or never present) or both are 0 (scikit-learn would report 0 there).

    Example:
        >>> X.f1_score(torch.tensor([1, 1, 0, 1]), torch.tensor([1, 0, 0, 0]))
        tensor(0.5000)
    """
    return _f1_value(_class_counts(y_pred, y_true, c))


def roc_auc_score(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Area under the ROC curve of binary scores, as ``sklearn.metrics.roc_auc_score``.

    Tied scores form one threshold (a diagonal segment of the curve), as in scikit-learn.

    Args:
        y_pred: scores of the positive class ``[N]`` (probabilities, logits or any ranking).
        y_true: binary labels ``[N]`` (0 or 1).

    Returns:
        A 0-dim float tensor; NaN when only one class occurs in ``y_true``, or a score is NaN.

    Example:
        >>> X.roc_auc_score(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.7500)
    """
    tps, fps, positives, negatives = _binary_curve(y_pred, y_true)
    tpr = torch.cat([tps.new_zeros(1), tps / positives])
    fpr = torch.cat([fps.new_zeros(1), fps / negatives])
    defined = (positives > 0) & (negatives > 0) & ~y_pred.isnan().any()
    return torch.where(defined, torch.trapezoid(tpr, fpr), torch.nan).float()


def average_precision(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Average precision of binary scores, as ``sklearn.metrics.average_precision_score``.

    The precision at each distinct score, weighted by the recall gained there.

    Args:
        y_pred: scores of the positive class ``[N]`` (probabilities, logits or any ranking).
        y_true: binary labels ``[N]`` (0 or 1).

    Returns:
        A 0-dim float tensor; NaN when ``y_true`` holds no positive, or a score is NaN (1 when
        it holds only positives, as scikit-learn).

    Example:
        >>> X.average_precision(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.8333)
    """
    tps, fps, positives, _ = _binary_curve(y_pred, y_true)
    recall_gain = torch.diff(tps, prepend=tps.new_zeros(1)) / positives
    value = (recall_gain * tps / (tps + fps)).sum()
    defined = (positives > 0) & ~y_pred.isnan().any()
    return torch.where(defined, value, torch.nan).float()


def pr_auc_score(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Area under the precision-recall curve of binary scores, by the trapezoid rule (PyBlaze
    2.x): ``sklearn.metrics.auc`` of ``sklearn.metrics.precision_recall_curve``.

    The curve starts at recall 0 with precision 1 and has one point per distinct score. For the
    step-wise area that scikit-learn recommends, use :func:`average_precision`.

    Args:
        y_pred: scores of the positive class ``[N]`` (probabilities, logits or any ranking).
        y_true: binary labels ``[N]`` (0 or 1).

    Returns:
        A 0-dim float tensor; NaN when ``y_true`` holds no positive, or a score is NaN.

    Example:
        >>> X.pr_auc_score(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.7917)
    """
    tps, fps, positives, _ = _binary_curve(y_pred, y_true)
    recall = torch.cat([tps.new_zeros(1), tps / positives])
    precision = torch.cat([tps.new_ones(1), tps / (tps + fps)])
    defined = (positives > 0) & ~y_pred.isnan().any()
    return torch.where(defined, torch.trapezoid(precision, recall), torch.nan).float()


# --- classification counts, shared by the functions and their streaming metrics ---------------


def _accuracy_counts(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """``[correct, wrong]`` as an int64 tensor."""
    _check_inputs(y_pred, y_true, pred_dims=(1, 2), pred_shapes=_CLASS_PREDICTIONS)
    correct = _ensure_classes(y_pred) == y_true
    return torch.stack([correct.sum(), (~correct).sum()])


def _class_counts(y_pred: Tensor, y_true: Tensor, c: int = 1) -> Tensor:
    """``[tp, fp, fn]`` of class ``c`` as an int64 tensor."""
    _check_inputs(y_pred, y_true, pred_dims=(1, 2), pred_shapes=_CLASS_PREDICTIONS)
    predicted, actual = _ensure_classes(y_pred) == c, y_true == c
    return torch.stack(
        [(predicted & actual).sum(), (predicted & ~actual).sum(), (~predicted & actual).sum()]
    )


def _accuracy_value(counts: Tensor) -> Tensor:
    correct, wrong = counts.float()
    return correct / (correct + wrong)


def _precision_value(counts: Tensor) -> Tensor:
    tp, fp, _ = counts.float()
    return tp / (tp + fp)


def _recall_value(counts: Tensor) -> Tensor:
    tp, _, fn = counts.float()
    return tp / (tp + fn)


def _f1_value(counts: Tensor) -> Tensor:
    # PyBlaze's 2pr / (p + r): NaN whenever precision or recall is undefined or both are 0
    # (scikit-learn's 2tp / (2tp + fp + fn) would give 0 there).
    p, r = _precision_value(counts), _recall_value(counts)
    return 2 * p * r / (p + r)


def _streaming(counts: Callable[..., Tensor], value: Callable[[Tensor], Tensor], n: int) -> Any:
    """The ``streaming`` factory of a built-in metric (torchmetrics is imported when it is used)."""

    def build(**kwargs: int) -> Any:
        with deferred_sigint():  # torchmetrics, on first use
            from pyblaze_pl.nn._streaming import SummedCounts

        return SummedCounts(counts, value, n, **kwargs)

    return build


accuracy.streaming = _streaming(_accuracy_counts, _accuracy_value, 2)
precision.streaming = _streaming(_class_counts, _precision_value, 3)
recall.streaming = _streaming(_class_counts, _recall_value, 3)
f1_score.streaming = _streaming(_class_counts, _f1_value, 3)


# --- helpers ----------------------------------------------------------------------------------


def _ensure_classes(y_pred: Tensor) -> Tensor:
    """Class indices from ``[N, C]`` scores (argmax), ``[N]`` probabilities (rounded) or indices."""
    if y_pred.dim() == 2:
        return y_pred.argmax(-1)
    if y_pred.is_floating_point():
        return y_pred.round()
    return y_pred


def _binary_curve(y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """True and false positives above each distinct score, highest score first (as scikit-learn).

    Returns ``(tps, fps, positives, negatives)``: cumulative counts at the last sample of each
    group of tied scores, and the totals; in float64 where the device supports it.
    """
    _check_inputs(y_pred, y_true, pred_dims=(1,), pred_shapes="[N] (scores of the positive class)")
    binary = (y_true == 0) | (y_true == 1)
    if not binary.all():
        raise ValueError(
            "Expected y_true to hold binary labels 0 or 1. "
            f"Received values: {y_true.unique().tolist()}."
        )
    order = torch.argsort(y_pred, descending=True, stable=True)
    scores, labels = y_pred[order], y_true[order].to(wide_float(y_pred.device))
    last_of_ties = torch.ones_like(scores, dtype=torch.bool)
    last_of_ties[:-1] = scores[1:] != scores[:-1]
    tps = labels.cumsum(0)[last_of_ties]
    fps = (1 - labels).cumsum(0)[last_of_ties]
    positives = labels.sum()
    return tps, fps, positives, len(labels) - positives


def _check_inputs(
    y_pred: Tensor, y_true: Tensor, pred_dims: tuple[int, ...], pred_shapes: str
) -> None:
    """Raises a TypeError/ValueError naming what is expected and what was received."""
    for arg, value in (("y_pred", y_pred), ("y_true", y_true)):
        if not isinstance(value, Tensor):
            raise TypeError(
                f"Expected {arg} to be a torch.Tensor. Received: {type(value).__name__}."
            )
    if y_pred.dim() not in pred_dims:
        raise ValueError(
            f"Expected y_pred of shape {pred_shapes}. Received: shape {tuple(y_pred.shape)}."
        )
    if y_true.dim() != 1:
        raise ValueError(f"Expected y_true of shape [N]. Received: shape {tuple(y_true.shape)}.")
    if len(y_pred) != len(y_true):
        raise ValueError(
            "Expected y_pred and y_true with the same number of samples N. "
            f"Received: shapes {tuple(y_pred.shape)} and {tuple(y_true.shape)}."
        )
