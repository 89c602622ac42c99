"""SupervisedEngine through Estimator.fit/evaluate/predict, against hand-written PyTorch loops."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X


def hand_written_loop(model, train, val, optimizer, loss_fn, epochs, steps=1):
    """The reference: PyTorch only. Returns per-batch losses and per-epoch validation losses."""
    batch_losses, val_losses, val_accuracies = [], [], []
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        for i, (x, y) in enumerate(train):
            loss = loss_fn(model(x), y)
            (loss / steps).backward()
            batch_losses.append(loss.item())
            if (i + 1) % steps == 0 or i + 1 == len(train):
                optimizer.step()
                optimizer.zero_grad()
        model.eval()
        with torch.no_grad():
            outputs = [(model(x), y) for x, y in val]
        y_pred = torch.cat([o for o, _ in outputs])
        y_true = torch.cat([t for _, t in outputs])
        val_losses.append(loss_fn(y_pred, y_true).item())
        val_accuracies.append((y_pred.argmax(-1) == y_true).float().mean().item())
    return batch_losses, val_losses, val_accuracies


@pytest.mark.parametrize(
    ("make_optimizer", "steps"),
    [
        (lambda p: optim.SGD(p, lr=0.1), 1),
        (lambda p: optim.SGD(p, lr=0.05, momentum=0.9), 1),
        (lambda p: optim.Adam(p, lr=0.01), 1),
        (lambda p: optim.SGD(p, lr=0.1), 3),
        (lambda p: optim.Adam(p, lr=0.01), 4),
    ],
)
def test_fit_equals_hand_written_loop(net, make_optimizer, steps):
    train_set, val_set = make_dataset(150, seed=0), make_dataset(45, seed=1)
    reference = copy.deepcopy(net)
    expected, expected_val, expected_acc = hand_written_loop(
        reference,
        make_loader(train_set, 16, shuffle=True),
        make_loader(val_set, 20),
        make_optimizer(reference.parameters()),
        nn.CrossEntropyLoss(),
        epochs=3,
        steps=steps,
    )
    history = net.fit(
        make_loader(train_set, 16, shuffle=True),
        val_data=make_loader(val_set, 20),
        epochs=3,
        optimizer=make_optimizer(net.parameters()),
        loss=nn.CrossEntropyLoss(),
        gradient_accumulation_steps=steps,
        metrics={"accuracy": X.accuracy},
        gpu=False,
    )
    assert len(history.micro_train_loss) == 3 * 10
    assert history.micro_train_loss == pytest.approx(expected, abs=1e-6)
    assert history.val_loss == pytest.approx(expected_val, abs=1e-6)
    assert history.val_accuracy == pytest.approx(expected_acc, abs=1e-7)
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_history_semantics(net):
    history = net.fit(
        make_loader(make_dataset(100), 32),  # 4 batches: 32, 32, 32, 4
        val_data=make_loader(make_dataset(30, seed=2), 7),
        epochs=2,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        metrics={"accuracy": X.accuracy, "f1": X.f1_score},
        gpu=False,
    )
    assert len(history) == 2
    assert history.keys == ["micro_train_loss", "train_loss", "val_accuracy", "val_f1", "val_loss"]
    micro = history.micro_train_loss
    assert len(micro) == 8
    # train_loss: the unweighted mean of the epoch's batch losses (as PyBlaze).
    assert history.train_loss == pytest.approx([sum(micro[:4]) / 4, sum(micro[4:]) / 4], abs=1e-12)
    for key in history.keys:
        assert all(type(v) is float for v in history[key]), key
    assert history.duration > 0


def test_validation_metrics_cover_the_whole_set(net):
    """val_* equals one call of the function on all concatenated outputs (uneven batches)."""
    val_set = make_dataset(37, seed=3)
    calls = []

    def spy(y_pred, y_true):
        calls.append(len(y_true))
        return (y_pred.argmax(-1) == y_true).float().mean()

    history = net.fit(
        make_loader(make_dataset(40), 10),
        val_data=make_loader(val_set, 5),
        epochs=1,
        optimizer=optim.SGD(net.parameters(), lr=0.0),
        loss=nn.CrossEntropyLoss(),
        metrics={"spy": spy, "recall": X.recall},
        gpu=False,
    )
    assert calls == [37]  # called once, on everything
    x, y = val_set.tensors
    with torch.no_grad():
        y_pred = net(x)
    assert history.val_loss[0] == pytest.approx(nn.functional.cross_entropy(y_pred, y).item())
    assert history.val_spy[0] == pytest.approx(X.accuracy(y_pred, y).item())
    assert history.val_recall[0] == pytest.approx(X.recall(y_pred, y).item())


def test_evaluate_and_predict(net):
    data = make_dataset(50, seed=4)
    x, y = data.tensors
    with torch.no_grad():
        expected = net(x)
    evaluation = net.evaluate(
        make_loader(data, 8), metrics={"accuracy": X.accuracy, "loss": nn.CrossEntropyLoss()}
    )
    assert evaluation.keys == ["accuracy", "loss"]
    assert evaluation.accuracy == pytest.approx(X.accuracy(expected, y).item())
    assert evaluation["loss"] == pytest.approx(nn.functional.cross_entropy(expected, y).item())
    assert type(evaluation.accuracy) is float

    # (x, y) pairs, 1-tuples (TensorDataset of inputs) and bare tensors, in loader order.
    for loader in (
        make_loader(data, 8),
        make_loader(torch.utils.data.TensorDataset(x), 8),
        torch.utils.data.DataLoader(x, batch_size=8),
    ):
        predictions = net.predict(loader)
        torch.testing.assert_close(predictions, expected)
        assert predictions.device.type == "cpu"


def test_model_is_trained_and_usable_after_fit(net):
    before = copy.deepcopy(net.state_dict())
    net.fit(
        make_loader(make_dataset(64), 16),
        epochs=1,
        optimizer=optim.SGD(net.parameters(), lr=0.5),
        loss=nn.CrossEntropyLoss(),
    )
    after = net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert net(torch.zeros(2, 8)).shape == (2, 3)


def test_engine_is_built_once_per_model(net):
    assert net.engine is net.engine
    assert isinstance(net.engine, xnn.SupervisedEngine)
    assert Net().engine is not net.engine


def test_engine_without_estimator(net):
    engine = xnn.SupervisedEngine(net)
    history = engine.train(
        make_loader(make_dataset(32), 16),
        epochs=2,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
    )
    assert len(history) == 2 and history.keys == ["micro_train_loss", "train_loss"]


class Recorder(xnn.TrainingCallback, xnn.PredictionCallback):
    def __init__(self, stop_before=None, stop_after=None):
        self.events = []
        self.stop_before, self.stop_after = stop_before, stop_after

    def before_training(self, model, num_epochs):
        self.events.append(("before_training", num_epochs))

    def before_epoch(self, current, num_iterations):
        self.events.append(("before_epoch", current, num_iterations))
        if current == self.stop_before:
            raise xnn.CallbackException(f"stop before {current}")

    def after_batch(self, *args):
        self.events.append(("after_batch", None if args[0] is None else float(args[0])))

    def after_epoch(self, metrics):
        self.events.append(("after_epoch", sorted(metrics.to_dict())))
        if len([e for e in self.events if e[0] == "after_epoch"]) == self.stop_after:
            raise xnn.CallbackException("stop after")

    def after_training(self):
        self.events.append(("after_training",))

    def before_predictions(self, model, num_iterations):
        self.events.append(("before_predictions", num_iterations))

    def after_predictions(self):
        self.events.append(("after_predictions",))


def fit_with(net, callback, epochs=5, val=True):
    return net.fit(
        make_loader(make_dataset(32), 16),
        val_data=make_loader(make_dataset(20, seed=5), 10) if val else None,
        epochs=epochs,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=[callback],
    )


def test_callback_hooks_order(net):
    callback = Recorder()
    history = fit_with(net, callback, epochs=1)
    names = [e[0] for e in callback.events]
    assert names == [
        "before_training",
        "before_epoch",
        "after_batch",
        "after_batch",
        "before_predictions",
        "after_batch",
        "after_batch",
        "after_predictions",
        "after_epoch",
        "after_training",
    ]
    assert callback.events[0] == ("before_training", 1)
    assert callback.events[1] == ("before_epoch", 0, 2)
    assert callback.events[2][1] == pytest.approx(history.micro_train_loss[0])
    assert callback.events[4] == ("before_predictions", 2)
    assert callback.events[5] == ("after_batch", None)
    assert callback.events[-2] == ("after_epoch", ["train_loss", "val_loss"])


def test_callback_exception_after_epoch_ends_training_cleanly(net, capsys):
    callback = Recorder(stop_after=2)
    history = fit_with(net, callback)
    assert len(history) == 2
    assert callback.events[-1] == ("after_training",)
    assert capsys.readouterr().out.strip().endswith("stop after")


def test_callback_exception_before_epoch_ends_training_cleanly(net, capsys):
    callback = Recorder(stop_before=1)
    history = fit_with(net, callback)
    assert len(history) == 1
    assert [e[0] for e in callback.events].count("after_epoch") == 1
    assert callback.events[-1] == ("after_training",)
    assert "stop before 1" in capsys.readouterr().out


def test_early_stopping_counts_epochs_without_strict_improvement(net, capsys):
    # lr=0: the validation loss never changes, so epochs 2, 3, 4 do not improve on epoch 1.
    history = net.fit(
        make_loader(make_dataset(32), 16),
        val_data=make_loader(make_dataset(20, seed=5), 10),
        epochs=20,
        optimizer=optim.SGD(net.parameters(), lr=0.0),
        loss=nn.CrossEntropyLoss(),
        callbacks=[xnn.EarlyStopping(patience=3)],
    )
    assert len(history) == 4
    assert "Early stopping after epoch 4 (patience 3)." in capsys.readouterr().out


def test_early_stopping_restore_best(net):
    scores = iter([3.0, 1.0, 2.0, 2.0, 2.0, 0.0])
    snapshots = []

    class Snapshot(xnn.TrainingCallback):
        def after_epoch(self, metrics):
            snapshots.append(copy.deepcopy(net.state_dict()))

    history = net.fit(
        make_loader(make_dataset(32), 16),
        val_data=make_loader(make_dataset(20, seed=5), 10),
        epochs=10,
        optimizer=optim.SGD(net.parameters(), lr=0.5),
        loss=nn.CrossEntropyLoss(),
        metrics={"score": lambda y_pred, y_true: torch.tensor(next(scores))},
        callbacks=[Snapshot(), xnn.EarlyStopping("val_score", patience=3, restore_best=True)],
    )
    assert history.val_score == [3.0, 1.0, 2.0, 2.0, 2.0]
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][key])
        assert not torch.equal(value, snapshots[-1][key])


def test_early_stopping_unit():
    model = nn.Linear(2, 1)
    stopper = xnn.EarlyStopping(metric=["a", "b"], patience=2, minimize=False)
    stopper.before_training(model, 10)
    stopper.after_epoch(xnn.Evaluation({"a": 1.0, "b": 1.0}))
    stopper.after_epoch(xnn.Evaluation({"a": 2.0, "b": 0.5}))  # sum 2.5: improvement
    stopper.after_epoch(xnn.Evaluation({"a": 2.0, "b": 0.5}))  # equal: no improvement
    with pytest.raises(xnn.CallbackException, match="after epoch 4"):
        stopper.after_epoch(xnn.Evaluation({"a": math.nan, "b": 0.0}))  # NaN never improves
    stopper.before_training(model, 10)  # a new fit resets the state
    assert (stopper.counter, stopper.epoch) == (0, 0)
    with pytest.raises(ValueError, match=r"'a'.*Logged: \['c'\]"):
        stopper.after_epoch(xnn.Evaluation({"c": 1.0}))
    with pytest.raises(ValueError, match="patience"):
        xnn.EarlyStopping(patience=0)


def test_callback_exception_verbose_flag(net, capsys):
    class Quiet(xnn.TrainingCallback):
        def after_epoch(self, metrics):
            raise xnn.CallbackException("not shown", verbose=False)

    assert len(fit_with(net, Quiet())) == 1
    assert "not shown" not in capsys.readouterr().out
