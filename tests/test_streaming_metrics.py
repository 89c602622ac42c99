"""to_metric: validation metrics over a whole data set, one batch at a time."""

import copy
import functools
import pickle

import pytest
import torch
import torch.nn.functional as F
import torchmetrics
from sklearn import metrics as skm
from torch import nn

import pyblaze_pl.nn.functional as X
from pyblaze_pl.nn._metrics import to_metric


def _split_sizes(n: int, seed: int) -> list[int]:
    """Random batch sizes summing to n, like a DataLoader's with an uneven last batch."""
    g = torch.Generator().manual_seed(seed)
    batch_size = int(torch.randint(7, 40, (1,), generator=g))
    sizes = [batch_size] * (n // batch_size) + [n % batch_size]
    assert sizes[-1] != 0 or n % batch_size == 0
    return [s for s in sizes if s > 0]


def _stream(metric, y_pred, y_true, seed=0):
    sizes = _split_sizes(len(y_pred), seed)
    for p, t in zip(y_pred.split(sizes), y_true.split(sizes), strict=True):
        metric.update(p, t)
    return metric.compute()


def _state_numel(metric) -> int:
    return sum(
        v.numel() if isinstance(v, torch.Tensor) else sum(t.numel() for t in v)
        for v in metric.metric_state.values()
    )


def _classification_data(form: str, n: int = 301, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y_true = torch.randint(0, 3, (n,), generator=g)
    if form == "logits":
        return torch.randn(n, 3, generator=g), y_true
    if form == "indices":
        return torch.randint(0, 3, (n,), generator=g), y_true
    return torch.rand(n, generator=g), y_true.clamp(max=1)  # binary probabilities


BUILTINS = {
    "accuracy": X.accuracy,
    "precision": X.precision,
    "recall": X.recall,
    "f1_score": X.f1_score,
    "recall_c2": functools.partial(X.recall, c=2),
    "precision_c0": functools.partial(X.precision, c=0),
    "f1_c2": functools.partial(X.f1_score, c=2),
}


# --- built-in metrics -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("form", ["logits", "indices", "probabilities"])
@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_stream_exactly(name, form, seed):
    fn = BUILTINS[name]
    y_pred, y_true = _classification_data(form, seed=seed)
    streamed = _stream(to_metric(name, fn), y_pred, y_true, seed=seed)
    expected = fn(y_pred, y_true)
    assert streamed.shape == () and streamed.dtype == torch.float32
    torch.testing.assert_close(streamed, expected, rtol=0, atol=0, equal_nan=True)


def test_builtin_is_defined_when_only_some_batches_leave_it_undefined():
    # class 1 is predicted in the first batch only: per batch precision would be NaN elsewhere
    y_pred = torch.zeros(100, dtype=torch.long)
    y_pred[:5] = 1
    y_true = torch.tensor([1, 0] * 50)
    streamed = _stream(to_metric("p", X.precision), y_pred, y_true)
    assert streamed.item() == pytest.approx(3 / 5)
    assert streamed.item() == pytest.approx(X.precision(y_pred, y_true).item())


@pytest.mark.parametrize("fn", [X.precision, X.recall, X.f1_score])
def test_builtin_is_nan_where_the_function_is(fn):
    y_pred, y_true = torch.zeros(50, dtype=torch.long), torch.full((50,), 2)
    assert torch.isnan(_stream(to_metric("m", fn), y_pred, y_true))


@pytest.mark.parametrize("fn", [X.roc_auc_score, X.average_precision])
def test_ranking_metrics_compute_once_on_all_scores(fn):
    g = torch.Generator().manual_seed(0)
    scores, labels = torch.randint(0, 10, (257,), generator=g) / 10, torch.randint(0, 2, (257,))
    streamed = _stream(to_metric("r", fn), scores, labels)
    assert streamed.item() == pytest.approx(fn(scores, labels).item(), abs=1e-7)
    sklearn_fn = {
        X.roc_auc_score: skm.roc_auc_score,
        X.average_precision: skm.average_precision_score,
    }
    assert streamed.item() == pytest.approx(sklearn_fn[fn](labels, scores), abs=1e-6)


def test_partial_with_unknown_argument_raises_type_error():
    with pytest.raises(TypeError, match=r"metrics\['r'\] to pass only arguments of recall\("):
        to_metric("r", functools.partial(X.recall, k=2))


# --- losses -----------------------------------------------------------------------------------


def _with_ignored(targets: torch.Tensor, index: int, g: torch.Generator) -> torch.Tensor:
    return targets.masked_fill(torch.rand(targets.shape, generator=g) < 0.3, index)


def _loss_cases():
    g = torch.Generator().manual_seed(0)
    n = 203
    logits = torch.randn(n, 5, generator=g)
    classes = torch.randint(0, 5, (n,), generator=g)
    seg_logits = torch.randn(n, 4, 3, 2, generator=g)
    seg_classes = torch.randint(0, 4, (n, 3, 2), generator=g)
    x, y = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
    p, t = torch.rand(n, 3, generator=g), torch.randint(0, 2, (n, 3), generator=g).float()
    log_q = F.log_softmax(torch.randn(n, 4, generator=g), -1)
    log_r = F.log_softmax(torch.randn(n, 4, generator=g), -1)
    return {
        "ce": (nn.CrossEntropyLoss(), logits, classes),
        "ce_ignore": (nn.CrossEntropyLoss(ignore_index=-1), logits, _with_ignored(classes, -1, g)),
        "ce_smooth_ignore": (
            nn.CrossEntropyLoss(ignore_index=3, label_smoothing=0.1),
            logits,
            _with_ignored(classes, 3, g),
        ),
        "ce_probabilities": (nn.CrossEntropyLoss(), logits, F.softmax(torch.randn(n, 5), -1)),
        "ce_segmentation": (
            nn.CrossEntropyLoss(ignore_index=255),
            seg_logits,
            _with_ignored(seg_classes, 255, g),
        ),
        "nll_ignore": (
            nn.NLLLoss(ignore_index=-100),
            F.log_softmax(logits, -1),
            _with_ignored(classes, -100, g),
        ),
        "nll_segmentation": (nn.NLLLoss(), F.log_softmax(seg_logits, 1), seg_classes),
        "mse": (nn.MSELoss(), x, y),
        "l1": (nn.L1Loss(), x, y),
        "smooth_l1": (nn.SmoothL1Loss(beta=0.5), x, y),
        "huber": (nn.HuberLoss(delta=0.7), x, y),
        "bce": (nn.BCELoss(), p, t),
        "bce_logits_pos_weight": (
            nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 0.5, 1])),
            x,
            t,
        ),
        "kl_mean": (nn.KLDivLoss(reduction="mean"), log_q, log_r.exp()),
        "kl_batchmean": (nn.KLDivLoss(reduction="batchmean"), log_q, log_r.exp()),
        "kl_batchmean_log_target": (
            nn.KLDivLoss(reduction="batchmean", log_target=True),
            log_q,
            log_r,
        ),
    }


LOSS_CASES = _loss_cases()


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", LOSS_CASES)
def test_losses_stream_their_mean(case, seed):
    loss, y_pred, y_true = LOSS_CASES[case]
    metric = to_metric("loss", loss)
    streamed = _stream(metric, y_pred, y_true, seed=seed)
    expected = loss(y_pred, y_true)
    assert streamed.shape == ()
    assert streamed.item() == pytest.approx(expected.item(), rel=1e-6)
    assert metric.metric_state["total"].dtype == torch.float64
    assert loss.reduction in ("mean", "batchmean")  # the user's loss is untouched


def test_loss_of_only_ignored_targets_is_nan_like_torch():
    loss = nn.CrossEntropyLoss(ignore_index=0)
    y_pred, y_true = torch.randn(10, 3), torch.zeros(10, dtype=torch.long)
    assert torch.isnan(loss(y_pred, y_true))
    assert torch.isnan(_stream(to_metric("loss", loss), y_pred, y_true))


@pytest.mark.parametrize(
    "loss",
    [nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0, 0.5])), F.cross_entropy],
    ids=["class_weights", "functional"],
)
def test_other_losses_are_called_once_on_the_concatenation(loss):
    g = torch.Generator().manual_seed(1)
    y_pred, y_true = torch.randn(150, 3, generator=g), torch.randint(0, 3, (150,), generator=g)
    metric = to_metric("loss", loss)
    streamed = _stream(metric, y_pred, y_true)
    assert streamed.item() == pytest.approx(loss(y_pred, y_true).item(), rel=1e-6)
    assert _state_numel(metric) == y_pred.numel() + y_true.numel()  # PyBlaze's semantics


def test_loss_module_is_not_moved_or_mutated():
    loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    metric = to_metric("loss", loss)
    metric.to("meta")
    assert loss.pos_weight.device.type == "cpu" and loss.reduction == "mean"
    assert metric.metric_state["total"].device.type == "meta"
    assert metric.metric_state["total"].dtype == torch.float64


# --- torchmetrics objects ---------------------------------------------------------------------


def test_torchmetrics_metric_is_cloned_reset_and_streams():
    user = torchmetrics.Accuracy(task="multiclass", num_classes=3)
    user.update(torch.tensor([0, 1]), torch.tensor([0, 0]))  # user state: 1 of 2
    user_state = copy.deepcopy(user.metric_state)
    y_pred, y_true = _classification_data("logits")
    metric = to_metric("acc", user)
    streamed = _stream(metric, y_pred, y_true)
    assert metric is not user
    assert streamed.item() == pytest.approx(skm.accuracy_score(y_true, y_pred.argmax(-1)))
    for key, value in user.metric_state.items():
        torch.testing.assert_close(value, user_state[key], rtol=0, atol=0)
    assert user.compute().item() == 0.5
    metric.to("meta")
    assert user.device.type == "cpu"


def test_metric_collection_returns_a_dict():
    user = torchmetrics.MetricCollection(
        {
            "acc": torchmetrics.Accuracy(task="multiclass", num_classes=3),
            "f1": torchmetrics.F1Score(task="multiclass", num_classes=3, average="macro"),
        }
    )
    y_pred, y_true = _classification_data("logits")
    result = _stream(to_metric("m", user), y_pred, y_true)
    assert set(result) == {"acc", "f1"}
    assert result["acc"].item() == pytest.approx(skm.accuracy_score(y_true, y_pred.argmax(-1)))
    expected_f1 = skm.f1_score(y_true, y_pred.argmax(-1), average="macro")
    assert result["f1"].item() == pytest.approx(expected_f1, abs=1e-6)


# --- any other callable -----------------------------------------------------------------------


def test_user_function_is_called_once_on_the_concatenation():
    calls = []

    def median_error(y_pred, y_true):
        calls.append(len(y_pred))
        return (y_pred - y_true).abs().median()

    g = torch.Generator().manual_seed(2)
    y_pred, y_true = torch.randn(99, generator=g), torch.randn(99, generator=g)
    streamed = _stream(to_metric("median", median_error), y_pred, y_true)
    assert calls == [99]
    assert streamed.item() == (y_pred - y_true).abs().median().item()


def test_user_lambda_returning_a_float_gives_a_0_dim_tensor():
    metric = to_metric("n", lambda y_pred, y_true: float((y_pred > y_true).sum()))
    streamed = _stream(metric, torch.arange(50.0), torch.full((50,), 9.5))
    assert isinstance(streamed, torch.Tensor) and streamed.shape == ()
    assert streamed.item() == 40.0


def test_dict_returning_function_gives_a_dict_of_tensors():
    def stats(y_pred, y_true):
        error = y_pred - y_true
        return {"mean": error.mean(), "max": error.abs().max().item()}

    g = torch.Generator().manual_seed(3)
    y_pred, y_true = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    result = _stream(to_metric("err", stats), y_pred, y_true)
    assert set(result) == {"mean", "max"}
    assert all(isinstance(v, torch.Tensor) and v.shape == () for v in result.values())
    assert result["mean"].item() == pytest.approx((y_pred - y_true).mean().item())
    assert result["max"].item() == pytest.approx((y_pred - y_true).abs().max().item())


def test_bad_return_value_raises_type_error():
    metric = to_metric("bad", lambda y_pred, y_true: "high")
    metric.update(torch.zeros(2), torch.zeros(2))
    with pytest.raises(TypeError, match=r"metrics\['bad'\] to return a Tensor, a number or a dict"):
        metric.compute()


def test_outputs_are_kept_detached():
    metric = to_metric("f", lambda y_pred, y_true: (y_pred - y_true).mean())
    y_pred = torch.randn(4, requires_grad=True)
    metric.update(y_pred * 2, torch.zeros(4))
    assert not metric.metric_state["y_pred"][0].requires_grad


@pytest.mark.parametrize("metric", [3, "accuracy", None])
def test_not_callable_raises_type_error(metric):
    expected = (
        "Expected metrics['acc'] to be a callable (y_pred, y_true) -> Tensor or a "
        f"torchmetrics.Metric. Received: {metric!r} ({type(metric).__name__})."
    )
    with pytest.raises(TypeError) as info:
        to_metric("acc", metric)
    assert str(info.value) == expected


# --- memory, DDP reduction, pickling ----------------------------------------------------------

STREAMING = {**BUILTINS, "ce_loss": nn.CrossEntropyLoss(ignore_index=-1), "mse": nn.MSELoss()}


def _streaming_data(name: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if name == "mse":
        return torch.randn(n, generator=g), torch.randn(n, generator=g)
    return torch.randn(n, 3, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("name", STREAMING)
def test_streaming_memory_does_not_grow_with_batches(name):
    metric = to_metric(name, STREAMING[name])
    y_pred, y_true = _streaming_data(name, 32)
    metric.update(y_pred, y_true)
    after_one = _state_numel(metric)
    for _ in range(99):
        metric.update(y_pred, y_true)
    assert _state_numel(metric) == after_one <= 3


def test_concatenating_metrics_do_grow_with_batches():  # the measure above can fail
    metric = to_metric("median", lambda y_pred, y_true: (y_pred - y_true).median())
    metric.update(torch.zeros(32), torch.zeros(32))
    after_one = _state_numel(metric)
    for _ in range(99):
        metric.update(torch.zeros(32), torch.zeros(32))
    assert _state_numel(metric) == 100 * after_one


MERGEABLE = {
    **BUILTINS,
    "ce_ignore": LOSS_CASES["ce_ignore"][0],
    "roc_auc": X.roc_auc_score,
    "user": lambda y_pred, y_true: (y_pred.argmax(-1) == y_true).float().mean(),
}


@pytest.mark.parametrize("name", MERGEABLE)
def test_states_reduce_across_ranks(name):
    """merge_state applies each state's dist_reduce_fx, as DDP's sync does."""
    fn = MERGEABLE[name]
    g = torch.Generator().manual_seed(5)
    y_pred, y_true = torch.randn(120, 3, generator=g), torch.randint(0, 3, (120,), generator=g)
    if name == "ce_ignore":
        y_true = _with_ignored(y_true, -1, g)
    if name == "roc_auc":
        y_pred, y_true = y_pred[:, 0], y_true.clamp(max=1)
    rank0, rank1 = to_metric(name, fn), to_metric(name, fn)
    rank0.update(y_pred[:50], y_true[:50])
    rank1.update(y_pred[50:], y_true[50:])
    if hasattr(rank0, "merge_state"):  # torchmetrics >= 1.6
        rank0.merge_state(rank1)
    else:  # what merge_state does (torchmetrics/metric.py), for the 1.3 floor
        rank0._reduce_states(rank1.metric_state)
    assert rank0.full_state_update is False
    assert rank0.compute().item() == pytest.approx(fn(y_pred, y_true).item(), rel=1e-6, nan_ok=True)


@pytest.mark.parametrize("name", STREAMING)
def test_streaming_metrics_pickle(name):  # e.g. for DDP spawn
    metric = to_metric(name, STREAMING[name])
    y_pred, y_true = _streaming_data(name, 16)
    metric.update(y_pred[:8], y_true[:8])
    restored = pickle.loads(pickle.dumps(metric))
    restored.update(y_pred[8:], y_true[8:])
    assert restored.compute().item() == pytest.approx(
        STREAMING[name](y_pred, y_true).item(), nan_ok=True
    )


# --- on a GPU ---------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("name", STREAMING)
def test_update_on_gpu_never_syncs_and_matches_cpu(name):
    fn = STREAMING[name]
    y_pred, y_true = _streaming_data(name, 500, seed=6)
    expected = _stream(to_metric(name, fn), y_pred, y_true)
    metric = to_metric(name, fn).to("cuda")
    y_pred, y_true = y_pred.cuda(), y_true.cuda()
    sizes = _split_sizes(len(y_pred), 0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for p, t in zip(y_pred.split(sizes), y_true.split(sizes), strict=True):
            metric.update(p, t)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    streamed = metric.compute()
    assert streamed.device.type == "cuda"
    torch.testing.assert_close(streamed.cpu(), expected, rtol=1e-6, atol=0, equal_nan=True)
