"""History and Evaluation."""

import json
import math

import pytest

from pyblaze_pl.nn.results import Evaluation, History


def make_history():
    return History(
        3.5,
        [
            {"micro_train_loss": [1.0, 0.5], "train_loss": 0.75, "val_loss": 0.8},
            {"micro_train_loss": [0.4, 0.2], "train_loss": 0.3, "val_loss": 0.6},
        ],
    )


def test_access():
    history = make_history()
    assert len(history) == 2
    assert history.keys == ["micro_train_loss", "train_loss", "val_loss"]
    assert history.micro_train_loss == [1.0, 0.5, 0.4, 0.2]
    assert history.train_loss == [0.75, 0.3]
    assert history["val_loss"] == [0.8, 0.6]
    assert "val_loss" in history and "val_accuracy" not in history
    assert history.duration == 3.5
    assert history.to_dict()["train_loss"] == [0.75, 0.3]


def test_unknown_metric_lists_the_keys():
    history = make_history()
    with pytest.raises(AttributeError, match=r"'val_accuracy'.*micro_train_loss.*val_loss"):
        _ = history.val_accuracy
    with pytest.raises(KeyError, match="val_accuracy"):
        history["val_accuracy"]
    with pytest.raises(AttributeError, match=r"Available: \[\]"):
        _ = History().train_loss


def test_missing_epoch_values_are_nan():
    history = History(0, [{"train_loss": 1.0, "val_loss": 2.0}, {"train_loss": 0.5}])
    assert history.train_loss == [1.0, 0.5]
    assert history.val_loss[0] == 2.0 and math.isnan(history.val_loss[1])


def test_save_load_roundtrip(tmp_path):
    history = make_history()
    path = tmp_path / "sub" / "history.json"
    history.save(path)
    assert History.load(path) == history
    assert json.loads(path.read_text())["format"] == "pyblaze_pl.History"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_load_pyblaze_v1_file(tmp_path):
    # Written by PyBlaze v1's History.save: {"duration": ..., "metrics": [...]}.
    path = tmp_path / "v1.json"
    content = {"duration": 12.0, "metrics": [{"micro_train_loss": [2.0], "train_loss": 2.0}]}
    path.write_text(json.dumps(content, indent=4, sort_keys=True))
    history = History.load(path)
    assert history.duration == 12.0 and history.train_loss == [2.0]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        History.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json"):
        History.load(bad)
    bad.write_text(json.dumps({"duration": 1}))
    with pytest.raises(ValueError, match="metrics"):
        History.load(bad)


def test_cat():
    joined = History.cat(make_history(), make_history())
    assert len(joined) == 4
    assert joined.duration == 7.0
    assert joined.train_loss == [0.75, 0.3, 0.75, 0.3]


def test_reprs():
    assert repr(make_history()) == (
        "History(epochs=2, duration=3.50s, last: train_loss=0.30000, val_loss=0.60000)"
    )
    assert repr(History()) == "History(epochs=0, duration=0.00s, last: -)"
    assert repr(Evaluation({"b": 0.5, "a": 1.0})) == "Evaluation(a=1.00000, b=0.50000)"


def test_evaluation():
    evaluation = Evaluation({"accuracy": 0.9, "loss": 0.3, "_timestamp": 1.0})
    assert evaluation.accuracy == 0.9
    assert evaluation["loss"] == 0.3
    assert evaluation.keys == ["_timestamp", "accuracy", "loss"]
    assert evaluation.to_dict() == {"accuracy": 0.9, "loss": 0.3}
    assert evaluation.with_prefix("val_")["val_accuracy"] == 0.9
    assert "accuracy" in evaluation
    with pytest.raises(AttributeError, match=r"'recall'.*Available"):
        _ = evaluation.recall


def test_plot_returns_a_figure_without_opening_a_window(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    history = History(
        1.0,
        [
            {"micro_train_loss": [1.0, 0.8], "train_loss": 0.9, "val_loss": 1.0, "val_acc": 0.5},
            {"micro_train_loss": [0.7, 0.5], "train_loss": 0.6, "val_loss": 0.8, "val_acc": 0.6},
        ],
    )
    open_before = plt.get_fignums()
    figure = history.plot()
    assert isinstance(figure, Figure)
    assert plt.get_fignums() == open_before  # not registered with pyplot
    loss_axes, metric_axes = figure.axes
    labels = [line.get_label() for line in loss_axes.lines]
    assert labels == ["batch train_loss", "train_loss", "val_loss"]
    assert list(loss_axes.lines[0].get_xdata()) == [0.5, 1.0, 1.5, 2.0]
    assert list(metric_axes.lines[0].get_ydata()) == [0.5, 0.6]
    figure.savefig(tmp_path / "history.png")
    assert len(history.plot(keys=["val_acc"]).axes) == 1
    with pytest.raises(ValueError, match=r"\['nope'\].*Valid"):
        history.plot(keys=["nope"])
