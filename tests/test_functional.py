"""X.accuracy / precision / recall / f1_score / roc_auc_score / average_precision."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import pyblaze_pl.nn.functional as X

CLASS_METRICS = {
    "precision": (X.precision, skm.precision_score),
    "recall": (X.recall, skm.recall_score),
    "f1_score": (X.f1_score, skm.f1_score),
}


def _random_predictions(form: str, n: int = 200, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(y_pred in the given form, the classes it stands for, y_true)``."""
    g = torch.Generator().manual_seed(seed)
    if form == "logits":
        y_pred = torch.randn(n, 3, generator=g)
        return y_pred, y_pred.argmax(-1), torch.randint(0, 3, (n,), generator=g)
    if form == "indices":
        y_pred = torch.randint(0, 3, (n,), generator=g)
        return y_pred, y_pred, torch.randint(0, 3, (n,), generator=g)
    y_pred = torch.rand(n, generator=g)  # binary probabilities
    return y_pred, (y_pred > 0.5).long(), torch.randint(0, 2, (n,), generator=g)


FORMS = ["logits", "indices", "probabilities"]


# --- hand computations ------------------------------------------------------------------------


def test_accuracy_by_hand():
    logits = torch.tensor([[2.0, 0.1, 0.0], [0.1, 0.3, 0.2], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    assert X.accuracy(logits, torch.tensor([0, 1, 1, 2])).item() == pytest.approx(2 / 4)
    indices = torch.tensor([0, 2, 2, 1, 1])
    assert X.accuracy(indices, torch.tensor([0, 2, 1, 1, 0])).item() == pytest.approx(3 / 5)
    probabilities = torch.tensor([0.9, 0.2, 0.6, 0.4])  # rounded to 1, 0, 1, 0
    assert X.accuracy(probabilities, torch.tensor([1, 0, 0, 0])).item() == pytest.approx(3 / 4)


def test_float_predictions_are_rounded_with_torch_round():
    # as PyBlaze: torch.round, half to even (0.5 -> 0, 1.5 -> 2), also outside [0, 1]
    y_pred = torch.tensor([0.5, 0.51, 1.5, 2.2, -0.3])
    assert X.accuracy(y_pred, torch.tensor([0, 1, 2, 2, 0])).item() == 1.0


def test_precision_recall_f1_by_hand():
    y_pred = torch.tensor([1, 1, 1, 0, 0, 2, 2, 1])
    y_true = torch.tensor([1, 0, 1, 1, 0, 2, 1, 2])
    # class 1: tp = 2 (indices 0, 2), fp = 2 (1, 7), fn = 2 (3, 6)
    assert X.precision(y_pred, y_true).item() == pytest.approx(2 / 4)
    assert X.recall(y_pred, y_true).item() == pytest.approx(2 / 4)
    assert X.f1_score(y_pred, y_true).item() == pytest.approx(0.5)
    # class 2: tp = 1 (5), fp = 1 (6), fn = 1 (7); class 0: tp = 1 (4), fp = 1 (3), fn = 1 (1)
    assert X.precision(y_pred, y_true, c=2).item() == pytest.approx(1 / 2)
    assert X.recall(y_pred, y_true, c=0).item() == pytest.approx(1 / 2)
    # class 1 with another split: tp = 1, fp = 3, fn = 0
    y_true = torch.tensor([1, 0, 0, 0, 0, 2, 2, 2])
    assert X.precision(y_pred, y_true).item() == pytest.approx(1 / 4)
    assert X.recall(y_pred, y_true).item() == pytest.approx(1.0)
    assert X.f1_score(y_pred, y_true).item() == pytest.approx(2 * 0.25 * 1 / 1.25)


def test_roc_auc_and_average_precision_by_hand():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    labels = torch.tensor([0, 0, 1, 1])
    # pairs (positive, negative) ranked right: (0.35, 0.1), (0.8, 0.1), (0.8, 0.4) -> 3 of 4
    assert X.roc_auc_score(scores, labels).item() == pytest.approx(0.75)
    # thresholds 0.8: P=1, R=1/2; 0.4: P=1/2; 0.35: P=2/3, R=1 -> 1/2 * 1 + 1/2 * 2/3
    assert X.average_precision(scores, labels).item() == pytest.approx(5 / 6)


def test_ties_count_half_in_roc_auc():
    # all scores tied: a random ranking, AUC 1/2; one tied positive-negative pair counts 1/2
    assert X.roc_auc_score(torch.ones(4), torch.tensor([0, 1, 0, 1])).item() == 0.5
    scores, labels = torch.tensor([0.2, 0.5, 0.5, 0.9]), torch.tensor([0, 0, 1, 1])
    assert X.roc_auc_score(scores, labels).item() == pytest.approx((1 + 0.5 + 1 + 1) / 4)


# --- scikit-learn -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_accuracy_matches_sklearn(form):
    y_pred, classes, y_true = _random_predictions(form)
    expected = skm.accuracy_score(y_true.numpy(), classes.numpy())
    assert X.accuracy(y_pred, y_true).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", CLASS_METRICS)
def test_class_metrics_match_sklearn(name, form):
    ours, theirs = CLASS_METRICS[name]
    y_pred, classes, y_true = _random_predictions(form)
    for c in range(int(y_true.max()) + 1):
        expected = theirs(y_true.numpy(), classes.numpy(), labels=[c], average=None)[0]
        assert ours(y_pred, y_true, c=c).item() == pytest.approx(expected, abs=1e-6), c


@pytest.mark.parametrize("seed", range(5))
def test_binary_ranking_metrics_match_sklearn_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 10, (300,), generator=g) / 10  # many ties
    labels = torch.randint(0, 2, (300,), generator=g)
    for ours, theirs in [
        (X.roc_auc_score, skm.roc_auc_score),
        (X.average_precision, skm.average_precision_score),
    ]:
        expected = theirs(labels.numpy(), scores.numpy())
        assert ours(scores, labels).item() == pytest.approx(expected, abs=1e-6)
        assert ours(scores.double(), labels.bool()).item() == pytest.approx(expected, abs=1e-6)
        assert ours(torch.randn(300, generator=g), labels).item() != pytest.approx(expected)


def test_binary_ranking_metrics_accept_logits_and_integer_scores():
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 1, 1])
    scores = torch.tensor([-2, 3, 0, 0, 5, 1, -1, 3])
    for ours, theirs in [
        (X.roc_auc_score, skm.roc_auc_score),
        (X.average_precision, skm.average_precision_score),
    ]:
        expected = theirs(labels.numpy(), scores.numpy())
        assert ours(scores, labels).item() == pytest.approx(expected, abs=1e-6)
        assert ours(scores.float(), labels.float()).item() == pytest.approx(expected, abs=1e-6)


# --- undefined values -------------------------------------------------------------------------


def _quietly(fn, *args, **kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs).item()


def test_class_never_predicted_gives_nan_precision():
    y_pred, y_true = torch.tensor([0, 0, 2, 0]), torch.tensor([1, 0, 2, 1])
    assert math.isnan(_quietly(X.precision, y_pred, y_true))
    assert _quietly(X.recall, y_pred, y_true) == 0.0
    # precision undefined: F1 = 2pr / (p + r) is NaN, as in PyBlaze (scikit-learn would say 0)
    assert math.isnan(_quietly(X.f1_score, y_pred, y_true))


def test_class_never_present_gives_nan_recall():
    y_pred, y_true = torch.tensor([1, 0, 1]), torch.tensor([0, 0, 2])
    assert math.isnan(_quietly(X.recall, y_pred, y_true))
    assert _quietly(X.precision, y_pred, y_true) == 0.0
    assert math.isnan(_quietly(X.f1_score, y_pred, y_true))


def test_f1_is_nan_when_precision_and_recall_are_zero():
    # PyBlaze: p = r = 0 gives 0 / 0; scikit-learn would report 0.
    y_pred, y_true = torch.tensor([1, 0, 0]), torch.tensor([0, 1, 0])
    assert _quietly(X.precision, y_pred, y_true) == 0.0
    assert _quietly(X.recall, y_pred, y_true) == 0.0
    assert math.isnan(_quietly(X.f1_score, y_pred, y_true))


def test_class_neither_predicted_nor_present_gives_nan_everywhere():
    y_pred, y_true = torch.tensor([0, 2, 0]), torch.tensor([0, 0, 2])
    for fn in (X.precision, X.recall, X.f1_score):
        assert math.isnan(_quietly(fn, y_pred, y_true)), fn.__name__


def test_empty_inputs_give_nan():
    empty = torch.zeros(0, dtype=torch.long)
    for fn in (X.accuracy, X.precision, X.recall, X.f1_score):
        assert math.isnan(_quietly(fn, empty, empty)), fn.__name__
    for fn in (X.roc_auc_score, X.average_precision):
        assert math.isnan(_quietly(fn, torch.zeros(0), empty)), fn.__name__


def test_one_class_gives_nan_roc_auc_quietly():
    scores = torch.tensor([0.1, 0.7, 0.4])
    assert math.isnan(_quietly(X.roc_auc_score, scores, torch.zeros(3)))
    assert math.isnan(_quietly(X.roc_auc_score, scores, torch.ones(3)))
    assert math.isnan(_quietly(X.average_precision, scores, torch.zeros(3)))
    # only positives: precision is 1 everywhere, AP is defined (scikit-learn gives 1 too)
    assert _quietly(X.average_precision, scores, torch.ones(3)) == 1.0


def test_nan_scores_give_nan():
    scores, labels = torch.tensor([0.1, float("nan"), 0.4]), torch.tensor([0, 1, 1])
    assert math.isnan(X.roc_auc_score(scores, labels).item())
    assert math.isnan(X.average_precision(scores, labels).item())


# --- results ----------------------------------------------------------------------------------


ALL_METRICS = [X.accuracy, X.precision, X.recall, X.f1_score, X.roc_auc_score, X.average_precision]


@pytest.mark.parametrize("fn", ALL_METRICS, ids=lambda fn: fn.__name__)
def test_returns_0_dim_float32_tensor(fn):
    y_pred, y_true = torch.tensor([0.2, 0.9, 0.6, 0.3]), torch.tensor([0, 1, 0, 1])
    value = fn(y_pred, y_true)
    assert isinstance(value, torch.Tensor)
    assert value.shape == () and value.dtype == torch.float32


def test_does_not_mutate_inputs():
    y_pred, y_true = torch.tensor([0.5, 0.2, 0.9]), torch.tensor([1, 0, 1])
    before = y_pred.clone(), y_true.clone()
    for fn in ALL_METRICS:
        fn(y_pred, y_true)
    assert torch.equal(y_pred, before[0]) and torch.equal(y_true, before[1])


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL_METRICS, ids=lambda fn: fn.__name__)
def test_non_tensor_input_raises_type_error(fn):
    with pytest.raises(TypeError, match=r"Expected y_pred to be a torch.Tensor. Received: list"):
        fn([0.1, 0.9], torch.tensor([0, 1]))
    with pytest.raises(TypeError, match=r"Expected y_true to be a torch.Tensor. Received: ndarray"):
        fn(torch.tensor([0.1, 0.9]), np.array([0, 1]))


@pytest.mark.parametrize("fn", [X.accuracy, X.precision, X.recall, X.f1_score])
def test_wrong_dims_raise_value_error_with_choices(fn):
    with pytest.raises(ValueError, match=r"\[N, C\].*\[N\].*Received: shape \(2, 3, 4\)"):
        fn(torch.randn(2, 3, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"y_true of shape \[N\]. Received: shape \(2, 3\)"):
        fn(torch.randn(2, 3), torch.zeros(2, 3))


@pytest.mark.parametrize("fn", ALL_METRICS, ids=lambda fn: fn.__name__)
def test_mismatched_lengths_raise_value_error(fn):
    with pytest.raises(ValueError, match=r"same number of samples N. Received: shapes \(3,\) and"):
        fn(torch.rand(3), torch.tensor([0, 1]))


@pytest.mark.parametrize("fn", [X.roc_auc_score, X.average_precision])
def test_binary_ranking_metrics_reject_2d_scores_and_multiclass_labels(fn):
    with pytest.raises(ValueError, match=r"\[N\] \(scores of the positive class\). Received"):
        fn(torch.rand(4, 2), torch.tensor([0, 1, 1, 0]))
    with pytest.raises(ValueError, match=r"binary labels 0 or 1. Received values: \[0, 1, 2\]"):
        fn(torch.rand(4), torch.tensor([0, 1, 2, 0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("form", FORMS)
def test_classification_metrics_stay_on_gpu_without_syncs(form):
    y_pred, _, y_true = _random_predictions(form, n=1000)
    expected = [fn(y_pred, y_true) for fn in (X.accuracy, X.precision, X.recall, X.f1_score)]
    y_pred, y_true = y_pred.cuda(), y_true.cuda()
    torch.cuda.set_sync_debug_mode("error")
    try:
        values = [fn(y_pred, y_true) for fn in (X.accuracy, X.precision, X.recall, X.f1_score)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for value, want in zip(values, expected, strict=True):
        assert value.device.type == "cuda" and value.shape == ()
        torch.testing.assert_close(value.cpu(), want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("fn", [X.roc_auc_score, X.average_precision])
def test_ranking_metrics_on_gpu_match_cpu(fn):
    g = torch.Generator().manual_seed(7)
    scores, labels = torch.randint(0, 50, (5000,), generator=g) / 50, torch.randint(0, 2, (5000,))
    value = fn(scores.cuda(), labels.cuda())
    assert value.device.type == "cuda"
    assert value.item() == pytest.approx(fn(scores, labels).item(), abs=1e-7)
