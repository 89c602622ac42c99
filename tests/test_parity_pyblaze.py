"""Parity with the real PyBlaze (2.3.2, installed test-only by `make test`).

The same model (same initial weights), the same data in the same order and the same optimizer
run through PyBlaze's ``MLEEngine`` and through pyblaze_pl; per-batch losses, epoch losses,
validation losses and metrics, final weights, ``evaluate()`` and ``predict()`` must agree within
1e-5. PyBlaze 2.3.2 runs unpatched on torch 2.x on the CPU; it needs scikit-learn (metrics)
and tensorboard (imported by its tracking callbacks), both in the dev extra. Importing it
replaces torch's ``Dataset`` helpers with PyBlaze's; ``_import_pyblaze`` puts ours back.

Randomness is shared, not avoided: the training loaders shuffle with the global generator, and
``torch.manual_seed`` is called right before each run. Both loops draw from the global generator
in the same order: a DataLoader draws its base seed on every ``iter()`` (and RandomSampler its
permutation seed on the first batch), dropout draws during the forward passes, and the
validation loader's ``iter()`` comes after the epoch's last batch. Lightning draws nothing else
(no sanity validation, no distributed sampler on one process). A test checks that the
generator ends in the same state after both runs, so a difference in how randomness is consumed
fails the tests rather than hides.

Where PyBlaze is wrong, pyblaze_pl stays right and the tests say so: gradient accumulation,
``History.save``/``load`` of PyBlaze 2.x, ``predict`` in training mode and unrounded binary
probabilities in the metrics of PyBlaze 2.x.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from pyblaze_parity import PF, pnn, pyblaze_history
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset, TensorDataset

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X
from pyblaze_pl.nn import data as pyblaze_pl_data
from pyblaze_pl.testing import assert_histories_close, assert_models_close

TOL = 1e-5  # absolute tolerance for every compared number
SEED = 1234
EPOCHS = 3


# --- models and data ---------------------------------------------------------------------------


class Classifier(xnn.Estimator, nn.Module):
    """8 features -> 3 classes, optionally with batch norm and dropout."""

    __engine__ = xnn.SupervisedEngine

    def __init__(self, norm_and_dropout: bool = False) -> None:
        super().__init__()
        extra = [nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3)] if norm_and_dropout else []
        self.layers = nn.Sequential(nn.Linear(8, 16), *extra, nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class BinaryClassifier(xnn.Estimator, nn.Module):
    """8 features -> one logit per sample, ``[N]``."""

    __engine__ = xnn.SupervisedEngine

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


def make_data(n: int, seed: int, binary: bool = False) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = torch.randint(0, 2 if binary else 3, (n,), generator=g)
    return TensorDataset(x, y.float() if binary else y)


TRAIN, VAL = make_data(150, seed=0), make_data(45, seed=1)  # 10 batches of 16 (the last: 6)


def loaders(train: TensorDataset = TRAIN, val: TensorDataset = VAL) -> tuple[DataLoader, ...]:
    """Fresh loaders; the training loader shuffles with the global generator."""
    return DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=20)


def assert_evaluations_close(ours: xnn.Evaluation, theirs: dict[str, float]) -> None:
    assert ours.keys == sorted(theirs)
    for key, value in theirs.items():
        assert same_value(ours[key], value), (key, ours[key], value)


def same_value(a: float | torch.Tensor, b: float | torch.Tensor, tol: float = TOL) -> bool:
    """Equal within ``tol``; NaN equals NaN."""
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def run_both(
    make_model: Callable[[], nn.Module],
    make_optimizer: Callable[[Any], optim.Optimizer],
    metrics: dict[str, tuple[Any, Any]],
    loss: nn.Module,
    train: TensorDataset = TRAIN,
    val: TensorDataset = VAL,
    **fit_kwargs: Any,
) -> tuple[Any, ...]:
    """Trains the same model with PyBlaze and with pyblaze_pl.

    ``metrics`` maps a name to ``(PyBlaze's function, pyblaze_pl's function)``.
    Returns ``(pyblaze engine, its model, its history, our model, our history)``.
    """
    torch.manual_seed(0)
    ours = make_model()
    theirs = copy.deepcopy(ours)

    engine = pnn.MLEEngine(theirs)
    train_loader, val_loader = loaders(train, val)
    torch.manual_seed(SEED)
    their_history = engine.train(
        train_loader,
        val_data=val_loader,
        epochs=EPOCHS,
        optimizer=make_optimizer(theirs.parameters()),
        loss=loss,
        metrics={k: pair[0] for k, pair in metrics.items()},
        gpu=False,
        **fit_kwargs,
    )
    train_loader, val_loader = loaders(train, val)
    torch.manual_seed(SEED)
    our_history = ours.fit(
        train_loader,
        val_data=val_loader,
        epochs=EPOCHS,
        optimizer=make_optimizer(ours.parameters()),
        loss=loss,
        metrics={k: pair[1] for k, pair in metrics.items()},
        gpu=False,
        **fit_kwargs,
    )
    return engine, theirs, their_history, ours, our_history


def test_importing_pyblaze_leaves_pyblaze_pl_dataset_helpers() -> None:
    assert Dataset.random_split is pyblaze_pl_data.random_split
    assert Dataset.loader is pyblaze_pl_data.loader
    assert Dataset.split is pyblaze_pl_data.split


# --- training: History, weights, evaluate, predict ---------------------------------------------

OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
    "adam": lambda p: optim.Adam(p, lr=0.01),
}

CLASS_METRICS = {
    "accuracy": (PF.accuracy, X.accuracy),
    "precision": (PF.precision, X.precision),
    "recall_2": (functools.partial(PF.recall, c=2), functools.partial(X.recall, c=2)),
    "f1_score": (PF.f1_score, X.f1_score),
    "mean_logit": ((lambda y_pred, _: y_pred.mean()),) * 2,  # any function of the whole set
}


@pytest.mark.parametrize(
    ("optimizer", "norm_and_dropout"),
    [("sgd", False), ("sgd_momentum", False), ("adam", False), ("adam", True), ("sgd", True)],
)
def test_training_matches_pyblaze(optimizer: str, norm_and_dropout: bool) -> None:
    engine, theirs, their_history, ours, our_history = run_both(
        lambda: Classifier(norm_and_dropout),
        OPTIMIZERS[optimizer],
        CLASS_METRICS,
        nn.CrossEntropyLoss(),
    )
    expected = pyblaze_history(their_history)
    assert sorted(expected) == [
        "micro_train_loss",
        "train_loss",
        "val_accuracy",
        "val_f1_score",
        "val_loss",
        "val_mean_logit",
        "val_precision",
        "val_recall_2",
    ]
    assert len(expected["micro_train_loss"]) == EPOCHS * 10
    assert_histories_close(our_history, expected, rtol=0, atol=TOL)
    assert_models_close(ours, theirs, rtol=0, atol=TOL)  # BatchNorm's running stats included

    metrics = {"accuracy": CLASS_METRICS["accuracy"], "loss": (nn.CrossEntropyLoss(),) * 2}
    _, val_loader = loaders()
    their_evaluation = engine.evaluate(
        val_loader, metrics={k: m[0] for k, m in metrics.items()}, gpu=False
    )
    our_evaluation = ours.evaluate(
        val_loader, metrics={k: m[1] for k, m in metrics.items()}, gpu=False
    )
    assert_evaluations_close(our_evaluation, their_evaluation)

    # PyBlaze's predict keeps the model's mode; after its validation and evaluate that is eval.
    assert not theirs.training
    predictions = ours.predict(val_loader, gpu=False)
    assert predictions.shape == (45, 3)
    torch.testing.assert_close(predictions, engine.predict(val_loader, gpu=False), atol=TOL, rtol=0)


def test_binary_ranking_metrics_during_training_match_pyblaze() -> None:
    train, val = make_data(150, seed=2, binary=True), make_data(45, seed=3, binary=True)
    metrics = {
        "roc_auc": (PF.roc_auc_score, X.roc_auc_score),
        "average_precision": (PF.average_precision, X.average_precision),
    }
    _, theirs, their_history, ours, our_history = run_both(
        BinaryClassifier, OPTIMIZERS["adam"], metrics, nn.BCEWithLogitsLoss(), train, val
    )
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours, theirs, rtol=0, atol=TOL)


def test_training_consumes_the_global_generator_as_pyblaze() -> None:
    # Dropout and shuffling draw from the global generator: both runs must leave it in the same
    # state, or the other tests would compare different random numbers.
    states = []
    for run in ("pyblaze", "pyblaze_pl"):
        torch.manual_seed(0)
        model = Classifier(norm_and_dropout=True)
        train_loader, val_loader = loaders()
        torch.manual_seed(SEED)
        kwargs = {"optimizer": optim.SGD(model.parameters(), lr=0.1), "loss": nn.CrossEntropyLoss()}
        if run == "pyblaze":
            pnn.MLEEngine(model).train(train_loader, val_loader, epochs=2, gpu=False, **kwargs)
        else:
            model.fit(train_loader, val_data=val_loader, epochs=2, gpu=False, **kwargs)
        states.append(torch.get_rng_state())
    assert torch.equal(states[0], states[1])


# --- MLEEngine: pyblaze_pl's against PyBlaze's --------------------------------------------------


class Flow(nn.Module):
    """An affine flow: ``(z, log|det|)`` for the loss ``mean(z^2 / 2) - log|det|``."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(8))
        self.log_scale = nn.Parameter(torch.zeros(8))

    def forward(self, x: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, ...]:
        z = (x - self.shift) * self.log_scale.exp() / temperature
        return z, self.log_scale.sum().expand(len(x))


def flow_loss(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    return (0.5 * z.pow(2).sum(-1) - log_det).mean()


class Scaled(nn.Module):
    """A linear classifier whose logits are divided by ``temperature``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return self.linear(x) / temperature


class Autoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 3), nn.Tanh(), nn.Linear(3, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


INPUTS_ONLY = TensorDataset(TRAIN.tensors[0]), TensorDataset(VAL.tensors[0])


def mle_pair(
    make_model: Callable[[], nn.Module],
    engine_kwargs: dict[str, Any],
    loss: Any,
    data: tuple[TensorDataset, TensorDataset] = (TRAIN, VAL),
    **kwargs: Any,
) -> tuple[Any, ...]:
    """Trains with ``pyblaze.nn.MLEEngine`` and ``xnn.MLEEngine``; returns both engines and
    histories."""
    results = []
    for engine_class in (pnn.MLEEngine, xnn.MLEEngine):
        torch.manual_seed(0)
        engine = engine_class(make_model(), **engine_kwargs)
        train_loader, val_loader = loaders(*data)
        torch.manual_seed(SEED)
        history = engine.train(
            train_loader,
            val_data=val_loader,
            epochs=EPOCHS,
            optimizer=optim.Adam(engine.model.parameters(), lr=0.01),
            loss=loss,
            gpu=False,
            **kwargs,
        )
        results += [engine, history]
    return tuple(results)


def test_mle_engine_without_targets_matches_pyblaze() -> None:
    theirs, their_history, ours, our_history = mle_pair(
        Flow, {"expects_data_target": False}, flow_loss, INPUTS_ONLY, metrics={"nll": flow_loss}
    )
    assert sorted(our_history.keys) == ["micro_train_loss", "train_loss", "val_loss", "val_nll"]
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)
    _, val_loader = loaders(*INPUTS_ONLY)
    z, log_det = ours.predict(val_loader, gpu=False)
    their_z, their_log_det = theirs.predict(val_loader, gpu=False)
    torch.testing.assert_close(z, their_z, atol=TOL, rtol=0)
    torch.testing.assert_close(log_det, their_log_det, atol=TOL, rtol=0)


def test_mle_engine_with_inputs_as_targets_matches_pyblaze() -> None:
    theirs, their_history, ours, our_history = mle_pair(
        Autoencoder, {"uses_data_target": False, "uses_data_input": True}, nn.MSELoss()
    )
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)


def test_forward_and_eval_prefixed_kwargs_match_pyblaze() -> None:
    # train: temperature=2 in every training forward pass; eval_temperature=0.5 in validation.
    kwargs = {"temperature": 2.0, "eval_temperature": 0.5}
    metrics = {"accuracy": X.accuracy}
    theirs, their_history, ours, our_history = mle_pair(
        Scaled, {}, nn.CrossEntropyLoss(), metrics=metrics, **kwargs
    )
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)

    _, val_loader = loaders()
    loss = nn.CrossEntropyLoss()
    ours_eval = ours.evaluate(val_loader, metrics={"loss": loss}, gpu=False, temperature=0.5)
    theirs_eval = theirs.evaluate(val_loader, metrics={"loss": loss}, gpu=False, temperature=0.5)
    assert_evaluations_close(ours_eval, theirs_eval)
    # the validation loss of the last epoch was computed with temperature 0.5, not 2
    assert same_value(our_history.val_loss[-1], ours_eval.loss)


class Decay(xnn.ValueTrainingCallback):
    """PyBlaze 2.x's ParameterScheduler semantics: updated after every batch and epoch."""

    def __init__(self, initial: float) -> None:
        self.value = initial

    def after_batch(self, train_loss: Any) -> None:
        self.value *= 0.97

    def after_epoch(self, metrics: Any) -> None:
        self.value += 0.1

    def read(self) -> float:
        return self.value


def pyblaze_decay(initial: float) -> Any:
    """PyBlaze 2.x's ParameterScheduler doing what :class:`Decay` does. It calls the schedule
    after every batch and after every epoch; the iteration count tells them apart (after_epoch
    leaves it unchanged)."""
    seen = [-1]

    def schedule(value: float, epoch: int, iteration: int) -> float:
        after_epoch = iteration == seen[0]
        seen[0] = iteration
        return value + 0.1 if after_epoch else value * 0.97

    return pnn.ParameterScheduler(initial, schedule)


def test_value_training_callback_kwargs_match_pyblaze_parameter_scheduler() -> None:
    # A value read on every batch: `temperature` in training, `eval_temperature` in validation.
    temperatures = {
        pnn.MLEEngine: (pyblaze_decay(1.0), pyblaze_decay(0.5)),
        xnn.MLEEngine: (Decay(1.0), Decay(0.5)),
    }
    histories, models = [], []
    for engine_class, (temperature, eval_temperature) in temperatures.items():
        torch.manual_seed(0)
        engine = engine_class(Scaled())
        train_loader, val_loader = loaders()
        torch.manual_seed(SEED)
        histories.append(
            engine.train(
                train_loader,
                val_data=val_loader,
                epochs=EPOCHS,
                optimizer=optim.SGD(engine.model.parameters(), lr=0.1),
                loss=nn.CrossEntropyLoss(),
                gpu=False,
                temperature=temperature,
                eval_temperature=eval_temperature,
            )
        )
        models.append(engine.model)
    for theirs, ours in zip(*temperatures.values(), strict=True):
        assert ours.read() == pytest.approx(theirs.read())
        assert ours.read() != pytest.approx(1.0) and ours.read() != pytest.approx(0.5)
    assert_histories_close(histories[1], pyblaze_history(histories[0]), rtol=0, atol=TOL)
    assert_models_close(models[1], models[0], rtol=0, atol=TOL)


# --- functional metrics on the same tensors ----------------------------------------------------


def _random_inputs(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 3, (60,), generator=g)
    return {
        "logits": (torch.randn(60, 3, generator=g), targets),
        "indices": (torch.randint(0, 3, (60,), generator=g), targets),
    }


CLASS_EDGE_CASES = {
    # class 1 never predicted: precision 0/0
    "never_predicted": (torch.tensor([0, 2, 0, 2]), torch.tensor([1, 0, 1, 2])),
    # class 1 never present: recall 0/0
    "never_present": (torch.tensor([1, 0, 1, 2]), torch.tensor([0, 0, 2, 2])),
    # class 1 predicted and present, never together: precision = recall = 0, F1 0/0
    "never_right": (torch.tensor([1, 0, 0]), torch.tensor([0, 1, 0])),
    "all_one_class": (torch.tensor([1, 1, 1, 1]), torch.tensor([1, 1, 1, 1])),
    "all_other_class": (torch.tensor([0, 0, 0]), torch.tensor([0, 0, 0])),
    "logits_one_class": (torch.tensor([[3.0, 1.0], [2.0, 0.5]]), torch.tensor([0, 0])),
}


@pytest.mark.parametrize("c", [0, 1, 2])
@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "f1_score"])
@pytest.mark.parametrize(
    "inputs",
    [*_random_inputs(0).values(), *_random_inputs(1).values(), *CLASS_EDGE_CASES.values()],
    ids=[f"random{s}-{k}" for s in (0, 1) for k in ("logits", "indices")] + list(CLASS_EDGE_CASES),
)
def test_class_metrics_match_pyblaze(name: str, c: int, inputs: tuple[torch.Tensor, ...]) -> None:
    y_pred, y_true = inputs
    kwargs = {} if name == "accuracy" else {"c": c}
    ours = getattr(X, name)(y_pred, y_true, **kwargs)
    theirs = getattr(PF, name)(y_pred, y_true, **kwargs)
    assert same_value(ours, theirs, tol=1e-7), (ours, theirs)


def test_edge_cases_are_nan_in_both() -> None:
    # the undefined values, spelled out (the parametrized test above compares all of them)
    y_pred, y_true = CLASS_EDGE_CASES["never_predicted"]
    assert math.isnan(X.precision(y_pred, y_true)) and math.isnan(PF.precision(y_pred, y_true))
    assert math.isnan(X.f1_score(y_pred, y_true)) and math.isnan(PF.f1_score(y_pred, y_true))
    y_pred, y_true = CLASS_EDGE_CASES["never_present"]
    assert math.isnan(X.recall(y_pred, y_true)) and math.isnan(PF.recall(y_pred, y_true))
    y_pred, y_true = CLASS_EDGE_CASES["never_right"]
    assert X.precision(y_pred, y_true) == 0 and X.recall(y_pred, y_true) == 0
    assert math.isnan(X.f1_score(y_pred, y_true)) and math.isnan(PF.f1_score(y_pred, y_true))


RANKING_CASES = {
    "random": (torch.rand(50, generator=torch.Generator().manual_seed(3)), None),
    "ties": (torch.tensor([0.2, 0.2, 0.5, 0.5, 0.5, 0.9, 0.1, 0.9]), None),
    "logits": (torch.tensor([-2.0, 1.5, 0.3, -0.1, 4.0, 0.0]), None),
}


@pytest.mark.parametrize("name", ["roc_auc_score", "average_precision"])
@pytest.mark.parametrize("case", list(RANKING_CASES))
def test_ranking_metrics_match_pyblaze(name: str, case: str) -> None:
    y_pred = RANKING_CASES[case][0]
    g = torch.Generator().manual_seed(4)
    y_true = torch.randint(0, 2, y_pred.shape, generator=g)
    y_true[:2] = torch.tensor([0, 1])  # both classes present
    ours, theirs = getattr(X, name)(y_pred, y_true), getattr(PF, name)(y_pred, y_true)
    assert same_value(ours, theirs, tol=1e-7), (ours, theirs)


def test_ranking_metrics_with_one_class() -> None:
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    negatives, positives = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's UndefinedMetricWarning
        their_auc = [PF.roc_auc_score(scores, y) for y in (negatives, positives)]
        their_ap_negatives = PF.average_precision(scores, negatives)
    # ROC AUC with one class: undefined, NaN in both
    assert all(math.isnan(v) for v in their_auc)
    assert math.isnan(X.roc_auc_score(scores, negatives))
    assert math.isnan(X.roc_auc_score(scores, positives))
    # only positives: average precision 1 in both
    assert X.average_precision(scores, positives) == 1 == PF.average_precision(scores, positives)
    # no positive: recall is 0/0. PyBlaze 2.3.2 pins scikit-learn < 0.25, which returns NaN;
    # scikit-learn >= 1.1 (PR #19085) returns 0 with a warning. pyblaze_pl keeps NaN.
    assert math.isnan(X.average_precision(scores, negatives))
    assert math.isnan(their_ap_negatives) or their_ap_negatives == 0


def test_binary_probabilities_are_rounded_as_pyblaze_v1() -> None:
    # PyBlaze v1 rounds float predictions of shape [N] to classes; 2.x compares them unrounded
    # with the targets (so accuracy is 0 for any probability strictly between 0 and 1).
    # pyblaze_pl follows v1: it equals PyBlaze 2.x on the rounded predictions.
    probabilities = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.7])
    y_true = torch.tensor([1, 0, 0, 0, 1])
    for name in ("accuracy", "precision", "recall", "f1_score"):
        ours = getattr(X, name)(probabilities, y_true)
        assert same_value(ours, getattr(PF, name)(probabilities.round().long(), y_true), 1e-7)
    assert X.accuracy(probabilities, y_true) == pytest.approx(0.8)
    assert PF.accuracy(probabilities, y_true) == 0  # PyBlaze 2.x


# --- names outside the training API (tests/test_ported_names.py tests them against v1) -------


def test_functions_draw_and_compute_what_pyblaze_does() -> None:
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    for hard in (False, True):
        torch.manual_seed(SEED)
        ours = X.gumbel_softmax(logits, tau=0.5, hard=hard)
        torch.manual_seed(SEED)
        assert torch.equal(ours, PF.gumbel_softmax(logits, tau=0.5, hard=hard))
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(1)) * 2
    means = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(X.softround(x), PF.softround(x))
    torch.testing.assert_close(X.log_prob_standard_normal(x), PF.log_prob_standard_normal(x))
    torch.testing.assert_close(
        X.log_prob_standard_gmm(x, means), PF.log_prob_standard_gmm(x, means)
    )
    y_true = torch.randint(0, 2, (100,), generator=torch.Generator().manual_seed(3))
    y_pred = (torch.rand(100, generator=torch.Generator().manual_seed(4)) * 10).round() / 10
    assert X.pr_auc_score(y_pred, y_true).item() == pytest.approx(
        PF.pr_auc_score(y_pred, y_true).item(), abs=1e-6
    )


@pytest.mark.parametrize("cudnn", [True, False])
def test_pyblaze_modules_load_into_ours_and_compute_the_same(cudnn: bool) -> None:
    torch.manual_seed(0)
    pairs = [
        (pnn.StackedLSTM(3, [5, 2], cudnn=cudnn), xnn.StackedLSTM(3, [5, 2], cudnn=cudnn)),
        (pnn.LinearResidual(3, 8), xnn.LinearResidual(3, 8)),
        (pnn.View(-1, 7, 3), xnn.View(-1, 7, 3)),
    ]
    x = torch.randn(4, 7, 3)
    for theirs, ours in pairs:
        ours.load_state_dict(theirs.state_dict())
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)


def test_data_helpers_yield_what_pyblaze_yields() -> None:
    def draws(dataset, n=4):
        torch.manual_seed(SEED)
        items = iter(dataset)
        return [next(items) for _ in range(n)]

    assert torch.equal(
        torch.stack(draws(pnn.NoiseDataset(latent_dim=3))),
        torch.stack(draws(xnn.NoiseDataset("normal", 3))),
    )
    # PyBlaze 2.3.2's LabeledNoiseDataset cannot be iterated (`iter(super())`);
    # tests/test_ported_names.py checks ours against the draws its code describes.
    with pytest.raises(TypeError, match="'super' object is not iterable"):
        next(iter(pnn.LabeledNoiseDataset(3, 5)))
    source = TensorDataset(torch.arange(5))
    assert [xnn.TransformDataset(source, str)[i] for i in range(5)] == [
        pnn.TransformDataset(source, str)[i] for i in range(5)
    ]
    lhs, rhs = DataLoader(torch.arange(10), batch_size=2), DataLoader(torch.arange(6), batch_size=2)
    theirs, ours = pnn.ZipDataLoader(lhs, rhs, 2), xnn.ZipDataLoader(lhs, rhs, 2)
    assert len(ours) == len(theirs) == 2
    assert str(list(ours)) == str(list(theirs))


# --- where PyBlaze is wrong ---------------------------------------------------------------------


def accumulation_loop(model: nn.Module, steps: int, step_after_first: bool) -> list[float]:
    """A hand-written loop accumulating gradients over ``steps`` batches; with
    ``step_after_first`` it steps where PyBlaze 2.x does (after the first batch of each group).
    Returns every batch's own loss."""
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    train_loader, _ = loaders()
    losses = []
    for _ in range(EPOCHS):
        optimizer.zero_grad()
        for i, (x, y) in enumerate(train_loader):
            loss = loss_fn(model(x), y)
            (loss / steps).backward()
            losses.append(loss.item())
            group_done = i % steps == 0 if step_after_first else (i + 1) % steps == 0
            if group_done or i + 1 == len(train_loader):
                optimizer.step()
                optimizer.zero_grad()
    return losses


def test_gradient_accumulation_steps_after_each_group_not_after_its_first_batch() -> None:
    steps = 3
    torch.manual_seed(0)
    initial = Classifier()
    runs = {}
    for name in ("loop", "pyblaze_loop", "pyblaze", "ours"):
        model = copy.deepcopy(initial)
        torch.manual_seed(SEED)
        if name in ("loop", "pyblaze_loop"):
            losses = accumulation_loop(model, steps, step_after_first=name == "pyblaze_loop")
        else:
            train_loader, _ = loaders()
            kwargs = {
                "epochs": EPOCHS,
                "optimizer": optim.SGD(model.parameters(), lr=0.1),
                "loss": nn.CrossEntropyLoss(),
                "gradient_accumulation_steps": steps,
                "gpu": False,
            }
            if name == "pyblaze":
                losses = pnn.MLEEngine(model).train(train_loader, **kwargs).batch_loss
            else:
                losses = model.fit(train_loader, **kwargs).micro_train_loss
        runs[name] = (model, losses)

    # pyblaze_pl: the hand-written loop, with each batch's own loss in History
    assert_models_close(runs["ours"][0], runs["loop"][0], rtol=0, atol=1e-6)
    assert runs["ours"][1] == pytest.approx(runs["loop"][1], abs=1e-6)
    # PyBlaze 2.x steps after batches 0, 3, 6, 9 of each epoch (the first of every group) and
    # records the loss divided by the number of steps
    assert_models_close(runs["pyblaze"][0], runs["pyblaze_loop"][0], rtol=0, atol=1e-6)
    their_losses = [loss * steps for loss in runs["pyblaze"][1]]
    assert their_losses == pytest.approx(runs["pyblaze_loop"][1], abs=1e-5)
    with pytest.raises(AssertionError, match="differ"):
        assert_models_close(runs["pyblaze"][0], runs["loop"][0], rtol=0, atol=1e-6)


def test_history_save_and_load_round_trip_where_pyblaze_2_fails(tmp_path) -> None:
    torch.manual_seed(0)
    model = Classifier()
    train_loader, val_loader = loaders()
    theirs = copy.deepcopy(model)
    their_history = pnn.MLEEngine(theirs).train(
        train_loader,
        val_loader,
        epochs=2,
        gpu=False,
        optimizer=optim.SGD(theirs.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
    )
    # PyBlaze 2.x: save reads `self._metrics`, which its History does not have ...
    with pytest.raises(ValueError, match="_metrics"):
        their_history.save(tmp_path / "theirs.json")
    # ... and load calls History(**content), which its __init__ does not accept.
    v1_file = tmp_path / "v1.json"
    v1_file.write_text(json.dumps({"duration": 1.5, "metrics": [{"train_loss": 0.5}]}))
    with pytest.raises(TypeError, match="duration"):
        type(their_history).load(v1_file)

    # pyblaze_pl: load(save(h)) == h, and PyBlaze v1 files load as well
    history = model.fit(
        train_loader,
        val_data=val_loader,
        epochs=2,
        gpu=False,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
    )
    history.save(tmp_path / "ours.json")
    loaded = xnn.History.load(tmp_path / "ours.json")
    assert loaded == history
    assert_histories_close(loaded, history, rtol=0, atol=0)
    assert xnn.History.load(v1_file).train_loss == [0.5]


def test_predict_runs_in_eval_mode_where_pyblaze_2_keeps_training_mode() -> None:
    # PyBlaze 2.x's predict does not call model.eval(): after a fit without validation the
    # model is still in training mode, so dropout makes its predictions random and every
    # prediction batch updates BatchNorm's running statistics.
    torch.manual_seed(0)
    model = Classifier(norm_and_dropout=True)
    theirs = copy.deepcopy(model)
    train_loader, val_loader = loaders()
    kwargs = {"epochs": 1, "loss": nn.CrossEntropyLoss(), "gpu": False}
    engine = pnn.MLEEngine(theirs)
    torch.manual_seed(SEED)
    engine.train(train_loader, optimizer=optim.SGD(theirs.parameters(), lr=0.1), **kwargs)
    torch.manual_seed(SEED)
    model.fit(train_loader, optimizer=optim.SGD(model.parameters(), lr=0.1), **kwargs)
    assert_models_close(model, theirs, rtol=0, atol=TOL)
    trained = copy.deepcopy(model)
    assert theirs.training
    first, second = engine.predict(val_loader, gpu=False), engine.predict(val_loader, gpu=False)
    assert not torch.allclose(first, second)
    with pytest.raises(AssertionError, match=r"'layers\.1\.running_mean'"):
        assert_models_close(theirs, trained, rtol=0, atol=TOL)

    ours = model.predict(val_loader, gpu=False)
    torch.testing.assert_close(ours, model.predict(val_loader, gpu=False), rtol=0, atol=0)
    assert_models_close(model, trained, rtol=0, atol=0)  # predictions leave the model as it was
    in_eval_mode = pnn.MLEEngine(trained.eval())
    torch.testing.assert_close(ours, in_eval_mode.predict(val_loader, gpu=False), rtol=0, atol=TOL)
