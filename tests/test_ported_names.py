"""Behaviour of the PyBlaze names the library implements besides the training API: v1's
``BaseEngine``, ``NeptuneTracker``, ``NoiseDataset``, ``WeightedBCELoss``, ``StackedLSTM(Cell)``,
``X.gumbel_softmax``, ``X.generate_noise``, and 2.x's ``View``, ``LinearResidual``, trackers, data
wrappers and functions.

Numbers are compared with PyBlaze's formulas, written out here from the sources they cite
(v1: borchero/pyblaze at 1a8f672; 2.x: PyBlaze 2.3.2 from PyPI).
"""

from __future__ import annotations

import copy
import math
import sys
import types

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X

# --- BaseEngine -------------------------------------------------------------------------------


class V1Engine(xnn.BaseEngine):
    """A custom engine written against v1 (pyblaze/nn/engine/base.py): plain backward/step and a
    float loss from ``train_batch``."""

    def train_batch(self, data, optimizer=None, loss=None):
        x, y = data
        optimizer.zero_grad()
        value = loss(self.model(x), y)
        value.backward()
        optimizer.step()
        return value.item()

    def eval_batch(self, data):
        x, y = data
        return self.model(x), y


def _data(n: int = 48) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 4, generator=generator), torch.randint(0, 2, (n,)))


def test_v1_style_engine_trains_as_a_hand_written_loop() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    reference = copy.deepcopy(model)
    loader = DataLoader(_data(), batch_size=16)

    history = V1Engine(model).train(
        loader,
        val_data=loader,
        epochs=2,
        gpu=False,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy},
    )

    reference_optimizer = optim.SGD(reference.parameters(), lr=0.1)
    losses = []
    for _ in range(2):
        for x, y in loader:
            reference_optimizer.zero_grad()
            loss = F.cross_entropy(reference(x), y)
            loss.backward()
            reference_optimizer.step()
            losses.append(loss.item())
    assert history.micro_train_loss == pytest.approx(losses, abs=1e-6)
    assert history.train_loss == pytest.approx([sum(losses[:3]) / 3, sum(losses[3:]) / 3])
    assert history.keys == ["micro_train_loss", "train_loss", "val_accuracy", "val_loss"]
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


# --- trackers (v1 pyblaze/nn/callbacks/tracking.py, 2.x the same file) -----------------------


class LegacyExperiment:
    """neptune-client's experiment as v1 used it: ``log_metric(name, value)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def log_metric(self, name, value):
        self.calls.append((name, value))


class Series:
    def __init__(self, calls, name):
        self.calls, self.name = calls, name

    def append(self, value):
        self.calls.append((self.name, value))


class Run:
    """A neptune >= 1.0 run: ``run[name].append(value)``; like neptune's, its ``__getattr__``
    raises a non-AttributeError for the legacy method names."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def __getattr__(self, name):
        if name == "log_metric":
            raise RuntimeError("NeptunePossibleLegacyUsageException")
        raise AttributeError(name)

    def __getitem__(self, name):
        return Series(self.calls, name)


def _fit_with(callback: xnn.TrainingCallback) -> xnn.History:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    loader = DataLoader(_data(), batch_size=16)
    return V1Engine(model).train(
        loader,
        val_data=loader,
        epochs=2,
        gpu=False,
        callbacks=[callback],
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy},
    )


def _assert_logged(calls: list[tuple[str, float]], history: xnn.History) -> None:
    """v1's order: each epoch's 3 batch losses, then the epoch's metrics (any order)."""
    assert len(calls) == 6 * len(history)
    assert all(type(value) is float for _, value in calls)
    for epoch in range(len(history)):
        batches, metrics = (
            calls[6 * epoch : 6 * epoch + 3],
            dict(calls[6 * epoch + 3 : 6 * epoch + 6]),
        )
        assert [name for name, _ in batches] == ["batch_train_loss"] * 3
        expected = history.micro_train_loss[3 * epoch : 3 * epoch + 3]
        assert [value for _, value in batches] == pytest.approx(expected)
        assert metrics == pytest.approx(
            {key: history[key][epoch] for key in ("train_loss", "val_accuracy", "val_loss")}
        )


@pytest.mark.parametrize("experiment", [LegacyExperiment(), Run()], ids=["legacy", "run"])
def test_neptune_tracker_logs_every_batch_loss_and_epoch_metric(experiment) -> None:
    history = _fit_with(xnn.NeptuneTracker(experiment))
    _assert_logged(experiment.calls, history)


def test_neptune_tracker_names_several_losses_as_v1() -> None:
    experiment = LegacyExperiment()
    tracker = xnn.NeptuneTracker(experiment)
    tracker.after_batch((torch.tensor(1.0), 2.0))
    tracker.after_batch({"generator": 3.0})
    tracker.after_epoch(xnn.Evaluation({"val_loss": 0.5, "_hidden": 1.0}))
    assert experiment.calls == [
        ("batch_train_loss_0", 1.0),
        ("batch_train_loss_1", 2.0),
        ("batch_train_loss_generator", 3.0),
        ("val_loss", 0.5),
    ]


def test_neptune_tracker_without_experiment_starts_a_run(monkeypatch) -> None:
    run = Run()
    monkeypatch.setitem(sys.modules, "neptune", types.SimpleNamespace(init_run=lambda: run))
    assert xnn.NeptuneTracker().experiment is run


def test_neptune_tracker_without_neptune_names_the_install_and_the_lightning_logger(
    monkeypatch,
) -> None:
    monkeypatch.setitem(sys.modules, "neptune", None)  # makes `import neptune` fail
    with pytest.raises(ImportError, match=r"pip install neptune") as info:
        xnn.NeptuneTracker()
    assert "trainer_kwargs={'logger': NeptuneLogger(...)}" in str(info.value)
    xnn.NeptuneTracker(LegacyExperiment())  # an experiment needs no import


def test_sacred_and_wandb_trackers_log_the_same_values(monkeypatch) -> None:
    class Sacred:
        def __init__(self):
            self.calls = []

        def log_scalar(self, name, value):
            self.calls.append((name, value))

    sacred = Sacred()
    _assert_logged(sacred.calls, _fit_with(xnn.SacredTracker(sacred)))

    logged = []
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(log=logged.append))
    history = _fit_with(xnn.WandbTracker())
    assert all(len(d) == 1 for d in logged)
    _assert_logged([next(iter(d.items())) for d in logged], history)

    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install wandb.*WandbLogger"):
        xnn.WandbTracker()


def test_tensorboard_tracker_writes_steps_per_batch_and_epoch(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = xnn.TensorboardTracker(str(tmp_path))
    history = _fit_with(tracker)
    tracker.writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    batches = events.Scalars("batch_train_loss")
    assert [e.step for e in batches] == list(range(6))
    assert [e.value for e in batches] == pytest.approx(history.micro_train_loss)
    val_loss = events.Scalars("val_loss")
    assert [e.step for e in val_loss] == [0, 1]
    assert [e.value for e in val_loss] == pytest.approx(history.val_loss)


# --- noise (v1 pyblaze/nn/functional/random.py and pyblaze/nn/data/noise.py) -----------------


@pytest.mark.parametrize(
    ("noise_type", "v1_distribution"),
    [("normal", D.Normal(0, 1)), ("uniform", D.Uniform(-1, 1))],
)
def test_generate_noise_draws_what_v1_drew(noise_type, v1_distribution) -> None:
    torch.manual_seed(3)
    ours = X.generate_noise([64, 5], noise_type)
    torch.manual_seed(3)
    theirs = v1_distribution.sample([64, 5])
    assert torch.equal(ours, theirs)
    assert X.generate_noise(torch.Size([2, 3]), noise_type).shape == (2, 3)


def test_generate_noise_rejects_unknown_types() -> None:
    with pytest.raises(ValueError, match=r"one of \['normal', 'uniform'\]. Received: 'gauss'"):
        X.generate_noise([3], "gauss")


@pytest.mark.parametrize("noise_type", ["normal", "uniform"])
def test_noise_dataset_yields_v1s_items(noise_type) -> None:
    torch.manual_seed(5)
    items = iter(xnn.NoiseDataset(noise_type, 7))
    ours = [next(items) for _ in range(3)]
    torch.manual_seed(5)
    # v1: `yield X.generate_noise([dimension], noise_type)` forever.
    distribution = D.Normal(0, 1) if noise_type == "normal" else D.Uniform(-1, 1)
    theirs = [distribution.sample([7]) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_noise_dataset_batches_and_distributions() -> None:
    batch = next(iter(xnn.NoiseDataset("uniform", 4).loader(batch_size=32)))
    assert batch.shape == (32, 4)
    assert batch.min() >= -1 and batch.max() < 1
    custom = xnn.NoiseDataset(distribution=D.Normal(torch.full((2,), 10.0), 1e-6))
    assert torch.allclose(next(iter(custom)), torch.full((2,), 10.0))


def test_noise_dataset_rejects_bad_arguments_and_hints_the_v2_form() -> None:
    with pytest.raises(ValueError, match=r"Received: 'gauss'"):
        xnn.NoiseDataset("gauss", 2)
    with pytest.raises(ValueError, match=r"NoiseDataset\('normal', 16\) here"):
        xnn.NoiseDataset(16)
    with pytest.raises(ValueError, match=r"dimension to be an int >= 1. Received: 0"):
        xnn.NoiseDataset("normal", 0)


def test_labeled_noise_dataset_draws_what_2x_drew() -> None:
    torch.manual_seed(2)
    items = iter(xnn.LabeledNoiseDataset(latent_dim=3, num_classes=4))
    ours = [next(items) for _ in range(5)]
    torch.manual_seed(2)
    # 2.x pyblaze/nn/data/noise.py: Normal(zeros, ones).sample(), then Categorical.sample().
    normal = D.Normal(torch.zeros(3), torch.ones(3))
    categorical = D.Categorical(torch.Tensor([1.0 / 4] * 4))
    for noise, label in ours:
        assert torch.equal(noise, normal.sample())
        assert torch.equal(label, categorical.sample())


# --- functional (v1 pyblaze/nn/functional/gumbel.py, 2.x pyblaze/nn/functional/softgrad.py,
# densities.py, metrics.py) -------------------------------------------------------------------


def _v1_gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    uniform_sample = torch.empty_like(logits).uniform_(0.0, 1.0)
    gumbel_sample = -torch.log(eps - torch.log(uniform_sample + eps))
    y_soft = F.softmax((logits + gumbel_sample) / tau, dim=dim)
    if hard:
        index = y_soft.max(dim, keepdim=True)[1]
        y_hard = torch.zeros_like(logits).scatter_(dim, index, 1.0)
        return y_hard - y_soft.detach() + y_soft
    return y_soft


@pytest.mark.parametrize(
    ("tau", "hard", "dim"), [(1.0, False, -1), (0.5, True, -1), (2.0, True, 0)]
)
def test_gumbel_softmax_matches_v1(tau, hard, dim) -> None:
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(11)
    ours = X.gumbel_softmax(logits, tau=tau, hard=hard, dim=dim)
    torch.manual_seed(11)
    theirs = _v1_gumbel_softmax(logits, tau=tau, hard=hard, dim=dim)
    assert torch.equal(ours, theirs)
    torch.testing.assert_close(ours.sum(dim), torch.ones(ours.shape[1 - dim % 2]))
    if hard:
        assert set(ours.unique().tolist()) == {0.0, 1.0}


def test_gumbel_softmax_hard_passes_the_soft_gradient() -> None:
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    weights = torch.arange(12.0).view(4, 3)
    torch.manual_seed(0)
    (X.gumbel_softmax(logits, hard=True) * weights).sum().backward()
    hard_grad = logits.grad.clone()
    logits.grad = None
    torch.manual_seed(0)
    (X.gumbel_softmax(logits, hard=False) * weights).sum().backward()
    torch.testing.assert_close(hard_grad, logits.grad)


def test_softround_rounds_forward_and_passes_gradients() -> None:
    x = torch.tensor([0.2, 0.7, -1.6, 2.5], requires_grad=True)
    y = X.softround(x)
    assert torch.equal(y, torch.tensor([0.0, 1.0, -2.0, 2.0]))
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]))


def test_log_prob_standard_normal_and_gmm_match_torch_distributions() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=generator, dtype=torch.float64)
    means = torch.randn(4, 3, generator=generator, dtype=torch.float64) * 3
    normal = D.MultivariateNormal(torch.zeros(3, dtype=torch.float64), torch.eye(3).double())
    torch.testing.assert_close(X.log_prob_standard_normal(x), normal.log_prob(x))
    gmm = D.MixtureSameFamily(
        D.Categorical(torch.ones(4, dtype=torch.float64)),
        D.MultivariateNormal(means, torch.eye(3).double().expand(4, 3, 3)),
    )
    torch.testing.assert_close(X.log_prob_standard_gmm(x, means), gmm.log_prob(x))


def test_pr_auc_score_equals_scikit_learns_trapezoid_area() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        y_true = torch.randint(0, 2, (200,), generator=generator)
        y_pred = (torch.rand(200, generator=generator) * 10).round() / 10  # many ties
        precision, recall, _ = metrics.precision_recall_curve(y_true.numpy(), y_pred.numpy())
        expected = metrics.auc(recall, precision)
        assert X.pr_auc_score(y_pred, y_true).item() == pytest.approx(expected, abs=1e-6)


def test_pr_auc_score_is_nan_when_undefined() -> None:
    assert math.isnan(X.pr_auc_score(torch.tensor([0.1, 0.4]), torch.tensor([0, 0])).item())
    assert math.isnan(X.pr_auc_score(torch.tensor([0.1, math.nan]), torch.tensor([0, 1])).item())
    assert X.pr_auc_score(torch.tensor([0.9, 0.1]), torch.tensor([1, 0])).item() == 1.0


# --- modules (v1 pyblaze/nn/modules/{loss,lstm}.py, 2.x modules/{view,residual}.py) -----------


def _v1_weighted_bce(y_pred, y_true, labels, ignore_index=None):
    """v1's WeightedBCELoss.forward with sklearn's balanced class weights."""
    class_weight = pytest.importorskip("sklearn.utils.class_weight")
    weights = class_weight.compute_class_weight(
        "balanced", classes=torch.arange(max(labels) + 1).numpy(), y=torch.tensor(labels).numpy()
    )
    weights = torch.as_tensor(weights, dtype=torch.float)
    if ignore_index is not None:
        mask = ~(y_true == ignore_index)
        y_pred, y_true = y_pred[mask], y_true[mask]
    bce = nn.BCELoss(reduction="none")(y_pred, y_true)
    return (bce * weights[y_true.long()]).mean()


def test_weighted_bce_loss_matches_v1() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = [0, 0, 0, 1, 1, 2]
    y_pred = torch.rand(10, generator=generator)
    y_true = torch.randint(0, 2, (10,), generator=generator).float()

    assert torch.equal(
        xnn.WeightedBCELoss()(y_pred, y_true), F.binary_cross_entropy(y_pred, y_true)
    )
    loss = xnn.WeightedBCELoss(labels=labels)
    torch.testing.assert_close(loss.weights, torch.tensor([2 / 3, 1.0, 2.0]))
    torch.testing.assert_close(loss(y_pred, y_true), _v1_weighted_bce(y_pred, y_true, labels))

    y_true[[1, 4]] = 2.0  # ignored
    ignoring = xnn.WeightedBCELoss(labels=[0, 1, 1, 1], ignore_index=2)
    expected = _v1_weighted_bce(y_pred, y_true, [0, 1, 1, 1], ignore_index=2)
    torch.testing.assert_close(ignoring(y_pred, y_true), expected)
    assert ignoring.state_dict() == {}  # v1 kept the weights out of the state dict


def test_weighted_bce_loss_rejects_labels_without_every_class() -> None:
    with pytest.raises(ValueError, match=r"no samples of class\(es\) \[1\]"):
        xnn.WeightedBCELoss(labels=[0, 2, 2])
    with pytest.raises(ValueError, match=r"\(integers >= 0\). Received: \[0.5, 1.0\]"):
        xnn.WeightedBCELoss(labels=[0.5, 1.0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_weighted_bce_loss_and_stacked_lstm_on_the_gpu() -> None:
    loss = xnn.WeightedBCELoss(labels=[0, 0, 1])  # the loss is not moved with the model
    y_pred, y_true = torch.tensor([0.3, 0.8]), torch.tensor([0.0, 1.0])
    torch.testing.assert_close(loss(y_pred.cuda(), y_true.cuda()).cpu(), loss(y_pred, y_true))
    torch.manual_seed(0)
    lstm = xnn.StackedLSTM(3, [4, 2], cudnn=False)
    x = torch.randn(5, 2, 3)
    expected = lstm(x)
    torch.testing.assert_close(lstm.cuda()(x.cuda()).cpu(), expected, rtol=1e-4, atol=1e-5)


def _copy_cells_into_lstm(stacked: xnn.StackedLSTM, lstm: nn.LSTM) -> None:
    with torch.no_grad():
        for layer, cell in enumerate(stacked.stacked_cell.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(lstm, f"{name}_l{layer}").copy_(getattr(cell, name))


@pytest.mark.parametrize("batch_first", [False, True])
def test_stacked_lstm_with_equal_sizes_is_torchs_lstm(batch_first) -> None:
    torch.manual_seed(0)
    stacked = xnn.StackedLSTM(3, [5, 5], batch_first=batch_first)
    lstm = nn.LSTM(3, 5, num_layers=2, batch_first=batch_first)
    _copy_cells_into_lstm(stacked, lstm)
    x = torch.randn(4, 6, 3)
    expected, _ = lstm(x)
    torch.testing.assert_close(stacked(x), expected)
    last = expected[:, -1] if batch_first else expected[-1]
    torch.testing.assert_close(stacked(x, return_sequence=False), last)


def test_stacked_lstm_with_different_sizes_chains_lstms_and_takes_initial_states() -> None:
    torch.manual_seed(0)
    stacked = xnn.StackedLSTM(3, [5, 2])
    first, second = nn.LSTM(3, 5), nn.LSTM(5, 2)
    with torch.no_grad():
        for lstm, cell in zip((first, second), stacked.stacked_cell.cells, strict=True):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(lstm, f"{name}_l0").copy_(getattr(cell, name))
    x = torch.randn(7, 4, 3)
    states = [(torch.randn(4, 5), torch.randn(4, 5)), (torch.randn(4, 2), torch.randn(4, 2))]
    given = list(states)
    hidden, _ = first(x, tuple(s.unsqueeze(0) for s in states[0]))
    expected, _ = second(hidden, tuple(s.unsqueeze(0) for s in states[1]))
    torch.testing.assert_close(stacked(x, initial_states=states), expected)
    assert states == given  # not overwritten (v1 overwrote the list)


def test_stacked_lstm_cell_checks_the_number_of_states() -> None:
    cell = xnn.StackedLSTMCell(3, [4, 4])
    with pytest.raises(
        ValueError, match=r"one \(hidden, cell\) state per layer \(2\). Received: 1"
    ):
        cell(torch.zeros(2, 3), [(torch.zeros(2, 4), torch.zeros(2, 4))])
    with pytest.raises(ValueError, match="at least one layer"):
        xnn.StackedLSTMCell(3, [])


def test_stacked_lstm_without_cudnn_is_v1s_cell_and_has_second_derivatives() -> None:
    torch.manual_seed(0)
    stacked = xnn.StackedLSTM(3, [4], cudnn=False)
    cell = stacked.stacked_cell.cells[0]
    assert sorted(dict(cell.named_parameters())) == ["bias", "hidden_weight", "input_weight"]
    x = torch.randn(5, 2, 3, requires_grad=True)

    # v1 _LSTMCell.forward: addmm with the bias for input and hidden state; gates f, i, g, o.
    h, c = torch.zeros(2, 4), torch.zeros(2, 4)
    outputs = []
    for step in x:
        gx = torch.addmm(cell.bias, step, cell.input_weight)
        gh = torch.addmm(cell.bias, h, cell.hidden_weight)
        fx, ix1, ix2, ox = gx.split(4, dim=1)
        fh, ih1, ih2, oh = gh.split(4, dim=1)
        c = torch.sigmoid(fx + fh) * c + torch.sigmoid(ix1 + ih1) * torch.tanh(ix2 + ih2)
        h = torch.sigmoid(ox + oh) * torch.tanh(c)
        outputs.append(h)
    ours = stacked(x)
    torch.testing.assert_close(ours, torch.stack(outputs))

    (gradient,) = torch.autograd.grad(ours.sum(), x, create_graph=True)
    gradient.square().sum().backward()  # a second derivative, v1's reason for the flag
    assert cell.input_weight.grad is not None and cell.input_weight.grad.abs().sum() > 0


def test_view_and_linear_residual_follow_2x() -> None:
    x = torch.arange(24.0).view(2, 12)
    assert torch.equal(xnn.View(-1, 3, 4)(x), x.view(-1, 3, 4))
    assert repr(xnn.View(-1, 3, 4)) == "View(-1, 3, 4)"

    torch.manual_seed(0)
    residual = xnn.LinearResidual(4, 8, activation=nn.Tanh())
    assert list(residual.state_dict()) == ["w1.weight", "w1.bias", "w2.weight", "w2.bias"]
    x = torch.randn(3, 4)
    expected = x + torch.tanh(x @ residual.w1.weight.T + residual.w1.bias) @ residual.w2.weight.T
    torch.testing.assert_close(residual(x), expected + residual.w2.bias)
    assert isinstance(xnn.LinearResidual(4, 8).activation, nn.ReLU)


# --- data (2.x pyblaze/nn/data/{transform,zip,extensions}.py) ---------------------------------


def test_transform_dataset_applies_transforms_in_order() -> None:
    dataset = xnn.TransformDataset(TensorDataset(torch.arange(4)), lambda t: t[0] + 1, str)
    assert len(dataset) == 4
    assert [dataset[i] for i in range(4)] == ["tensor(1)", "tensor(2)", "tensor(3)", "tensor(4)"]


def test_zip_data_loader_groups_batches_and_stops_with_the_shorter() -> None:
    lhs = DataLoader(torch.arange(12), batch_size=2)  # 6 batches
    rhs = DataLoader(torch.arange(100, 108), batch_size=2)  # 4 batches
    zipped = xnn.ZipDataLoader(lhs, rhs, lhs_count=2)
    assert len(zipped) == 3
    steps = list(zipped)
    assert len(steps) == 3
    assert [t.tolist() for t in steps[1][0]] == [[4, 5], [6, 7]]
    assert [t.tolist() for t in steps[1][1]] == [[102, 103]]

    class Endless(IterableDataset):
        def __iter__(self):
            while True:
                yield torch.zeros(1)

    endless = DataLoader(Endless(), batch_size=2)
    assert len(xnn.ZipDataLoader(endless, rhs, rhs_count=3)) == 1
    with pytest.raises(TypeError, match="neither loader has one"):
        len(xnn.ZipDataLoader(endless, endless))
    with pytest.raises(ValueError, match=r"same batch size\. Received: 2 and 3"):
        xnn.ZipDataLoader(lhs, DataLoader(torch.arange(6), batch_size=3))


def test_dataset_split_partitions_by_condition() -> None:
    even, odd = TensorDataset(torch.arange(7)).split(lambda item: int(item[0]) % 2 == 0)
    assert even.indices == [0, 2, 4, 6]
    assert odd.indices == [1, 3, 5]
    with pytest.raises(TypeError, match="cannot be split"):
        xnn.NoiseDataset("normal", 2).split(lambda item: True)


def test_noise_dataset_takes_pyblaze_2s_latent_dim_keyword():
    # PyBlaze 2.3.2, pyblaze/nn/data/noise.py: Normal(zeros(latent_dim), ones(latent_dim)).sample()
    torch.manual_seed(3)
    expected = torch.distributions.Normal(torch.zeros(16), torch.ones(16)).sample()
    torch.manual_seed(3)
    assert torch.equal(next(iter(xnn.NoiseDataset(latent_dim=16))), expected)


def test_evaluation_merge_as_pyblaze_v1():
    # PyBlaze v1, pyblaze/nn/engine/wrappers.py, Evaluation.merge: later evaluations win.
    merged = xnn.Evaluation.merge(
        xnn.Evaluation({"a": 1.0, "b": 2.0}), xnn.Evaluation({"b": 3.0}), xnn.Evaluation({"c": 4.0})
    )
    assert merged.to_dict() == {"a": 1.0, "b": 3.0, "c": 4.0}
