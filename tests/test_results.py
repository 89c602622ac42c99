"""History and Evaluation."""

import json
import math
import time

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
    assert json.loads(path.read_text()) == {"duration": 3.5, "metrics": history._metrics}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


class PyBlazeV1History:
    """PyBlaze v1's History, reading side (borchero/pyblaze@1a8f672,
    pyblaze/nn/engine/wrappers.py: History.load, __init__, keys, __len__, __getattr__; flatten
    from pyblaze/utils/stdlib.py), copied because v1 cannot be imported next to torch 2."""

    @staticmethod
    def load(file):
        with open(file) as f:
            loaded = json.load(f)
        return PyBlazeV1History(**loaded)

    def __init__(self, duration, metrics):
        self.duration = duration
        self._metrics = metrics

    @property
    def keys(self):
        return sorted(self._metrics[0].keys())

    def __len__(self):
        return len(self._metrics)

    def __getattr__(self, name):
        if name == "_metrics":
            raise AttributeError()
        if len(self._metrics) == 0:
            raise AttributeError(f"Length of history is 0. Metric {name} cannot be accessed.")
        if name in self._metrics[0]:
            result = [m[name] for m in self._metrics]
            if name == "micro_train_loss":
                return [e for s in result for e in s]
            return result
        raise AttributeError(f"Metric {name} does not exist.")


def test_saved_files_are_read_by_pyblaze_v1(tmp_path):
    # Validation only in the second epoch: v1 reads the keys of the first epoch from every epoch.
    history = History(
        2.0,
        [
            {"micro_train_loss": [1.0, 0.5], "train_loss": 0.75},
            {"micro_train_loss": [0.4], "train_loss": 0.4, "val_loss": 0.6},
            {"train_loss": 0.3},
        ],
    )
    history.save(tmp_path / "h.json")
    theirs = PyBlazeV1History.load(tmp_path / "h.json")
    assert theirs.duration == 2.0 and len(theirs) == 3
    assert theirs.keys == history.keys == ["micro_train_loss", "train_loss", "val_loss"]
    assert theirs.micro_train_loss == history.micro_train_loss == [1.0, 0.5, 0.4]
    assert theirs.train_loss == history.train_loss
    assert math.isnan(theirs.val_loss[0]) and theirs.val_loss[1] == 0.6
    assert History.load(tmp_path / "h.json") == history  # NaN stands for "not computed"


def test_load_pyblaze_v1_file(tmp_path):
    # Written by PyBlaze v1's History.save: {"duration": ..., "metrics": [...]}.
    path = tmp_path / "v1.json"
    content = {"duration": 12.0, "metrics": [{"micro_train_loss": [2.0], "train_loss": 2.0}]}
    path.write_text(json.dumps(content, indent=4, sort_keys=True))
    history = History.load(path)
    assert history.duration == 12.0 and history.train_loss == [2.0]


def test_load_files_of_earlier_versions_of_the_library(tmp_path):
    path = tmp_path / "old.json"
    content = {
        "format": "pyblaze_pl.History",
        "version": 1,
        "duration": 1.5,
        "metrics": [{"micro_train_loss": [1, 0.5], "train_loss": 0.75, "val_loss": NAN}],
    }
    path.write_text(json.dumps(content))
    history = History.load(path)
    assert history.micro_train_loss == [1.0, 0.5] and isinstance(history.micro_train_loss[0], float)
    assert history.train_loss == [0.75] and math.isnan(history.val_loss[0])


NAN = float("nan")


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        (
            [{"micro_train_loss": "xyz"}],
            "metrics[0] (epoch 1)['micro_train_loss']: expected a list of numbers (one loss per "
            "batch), received 'xyz' (str).",
        ),
        (
            [{"train_loss": 1.0}, {"micro_train_loss": [1.0, "2"]}],
            "metrics[1] (epoch 2)['micro_train_loss']: expected a list of numbers (one loss per "
            "batch), received [1.0, '2'] (list).",
        ),
        (
            [{"train_loss": 1.0}, {"train_loss": 1.0}, {"val_loss": "0.5"}],
            "metrics[2] (epoch 3)['val_loss']: expected a number (NaN allowed), received '0.5' "
            "(str).",
        ),
        (
            [{"train_loss": None}],
            "metrics[0] (epoch 1)['train_loss']: expected a number (NaN allowed), received None "
            "(NoneType).",
        ),
        (
            [{"train_loss": True}],
            "metrics[0] (epoch 1)['train_loss']: expected a number (NaN allowed), received True "
            "(bool).",
        ),
        (
            [{"train_loss": [[[[[[[[1.0]]]]]]]]}],
            "metrics[0] (epoch 1)['train_loss']: expected a number (NaN allowed), received "
            "[[[[[[[...]]]]]]] (list).",
        ),
        (
            [[1.0, 2.0]],
            "metrics[0] (epoch 1): expected an object of metric values, received [1.0, 2.0] "
            "(list).",
        ),
    ],
)
def test_load_checks_every_value(tmp_path, metrics, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"duration": 1.0, "metrics": metrics}))
    with pytest.raises(ValueError) as info:
        History.load(path)
    assert str(info.value) == (
        f"Expected '{path}' to hold a History: a JSON object with 'duration' (seconds) and "
        f"'metrics', a list with one object of metric values per epoch (written by History.save "
        f"or PyBlaze). Received: {message}"
    )


def test_load_refuses_deeply_nested_json(tmp_path):
    path = tmp_path / "deep.json"
    depth = 100_000
    path.write_text('{"duration": 1.0, "metrics": [{"train_loss": ' + "[" * depth + "]" * depth)
    with pytest.raises(ValueError, match=r"deep\.json.*Received JSON nested too deeply to read"):
        History.load(path)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        History.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json"):
        History.load(bad)
    bad.write_text(json.dumps({"duration": 1}))
    with pytest.raises(
        ValueError, match=r"Received: an object without 'metrics' \(keys \['duration'\]\)\.$"
    ):
        History.load(bad)
    bad.write_text(json.dumps({"duration": 1, "metrics": {"train_loss": [1.0]}}))
    with pytest.raises(ValueError, match=r"Received: 'metrics' is a dict, not a list of records"):
        History.load(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"Received: a JSON list\.$"):
        History.load(bad)
    bad.write_text(json.dumps({"duration": "1s", "metrics": []}))
    with pytest.raises(ValueError, match=r"Received: 'duration' '1s' \(str\), expected a number"):
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
    assert labels == ["train_loss per batch", "train_loss", "val_loss"]
    assert list(loss_axes.lines[0].get_xdata()) == [0.5, 1.0, 1.5, 2.0]
    assert list(metric_axes.lines[0].get_ydata()) == [0.5, 0.6]
    figure.savefig(tmp_path / "history.png")
    assert len(history.plot(keys=["val_acc"]).axes) == 1
    with pytest.raises(ValueError, match=r"\['nope'\].*Valid"):
        history.plot(keys=["nope"])


def epoch_ticks(ax) -> list[float]:
    low, high = ax.get_xlim()
    return [t for t in ax.get_xticks() if low <= t <= high]


@pytest.mark.parametrize("epochs", [1, 3, 7, 40])
def test_plots_have_titles_labels_and_integer_epoch_ticks_from_1(epochs):
    history = History(
        1.0,
        [
            {"micro_train_loss": [1.0 / e, 0.5 / e], "train_loss": 1 / e, "val_loss": 1 / e}
            for e in range(1, epochs + 1)
        ],
    )
    figure = history.plot(["train_loss", "val_loss"])
    figure.canvas.draw()
    (ax,) = figure.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Loss per epoch", "Epoch", "Loss")
    assert [line.get_label() for line in ax.lines] == ["train_loss", "val_loss"]
    assert list(ax.lines[0].get_xdata()) == list(range(1, epochs + 1))
    ticks = epoch_ticks(ax)
    assert ticks and ticks[0] >= 1 and all(t == int(t) for t in ticks)
    assert 1 in ticks or epochs > 5

    batches = history.plot(["micro_train_loss"])
    batches.canvas.draw()
    (ax,) = batches.axes
    assert (ax.get_title(), ax.get_xlabel()) == ("Training loss per batch", "Epoch")
    assert ax.lines[0].get_alpha() is None  # drawn in full when alone
    ticks = epoch_ticks(ax)
    assert ticks and ticks[0] >= 1 and all(t == int(t) for t in ticks)

    both = History(1.0, [{"train_loss": 1.0, "val_accuracy": 0.5}] * epochs).plot()
    both.canvas.draw()
    assert [(a.get_title(), a.get_ylabel()) for a in both.axes] == [
        ("Loss per epoch", "Loss"),
        ("Metrics per epoch", "Value"),
    ]


def test_keys_are_a_list_and_callable():
    # PyBlaze v1: `history.keys` / `evaluation.keys` are properties (sorted lists); dicts and
    # PyBlaze 2.x callbacks call `metrics.keys()`. Both spellings give the sorted list.
    history = make_history()
    assert history.keys == history.keys() == ["micro_train_loss", "train_loss", "val_loss"]
    assert isinstance(history.keys, list) and history.keys[0] == "micro_train_loss"


def test_pyblaze_2_history_names():
    # PyBlaze 2.3.2, pyblaze/nn/engine/_history.py: `loss` is logged by after_epoch (the mean
    # batch loss of the epoch, our train_loss) and `batch_loss` by after_batch (every batch).
    history = make_history()
    assert history.loss == history.train_loss == [0.75, 0.3]
    assert history.batch_loss == history.micro_train_loss == [1.0, 0.5, 0.4, 0.2]
    with pytest.raises(AttributeError, match=r"History\.inspect \(PyBlaze 2\.x\) is not available"):
        history.inspect("val_loss")
    with pytest.raises(
        AttributeError,
        match=r"^History has no metric 'loss' \(PyBlaze 2\.x's name for 'train_loss'\)\. "
        r"Available: \['val_loss'\]\.$",
    ):
        _ = History(0, [{"val_loss": 1.0}]).loss
    assert History(0, [{"loss": 2.0, "train_loss": 1.0}]).loss == [2.0]  # a real key comes first
    with pytest.raises(KeyError, match="'loss'"):
        history["loss"]  # items are the recorded names only


def test_evaluation_is_a_read_only_mapping():
    evaluation = Evaluation({"loss": 0.3, "accuracy": 0.9})
    assert dict(evaluation) == {"accuracy": 0.9, "loss": 0.3}
    assert {**evaluation} == {"accuracy": 0.9, "loss": 0.3}
    assert list(evaluation.items()) == [("accuracy", 0.9), ("loss", 0.3)]
    assert list(evaluation.values()) == [0.9, 0.3] and list(evaluation) == ["accuracy", "loss"]
    assert evaluation.keys() == evaluation.keys == ["accuracy", "loss"]
    assert len(evaluation) == 2 and "loss" in evaluation and "f1" not in evaluation
    assert evaluation.get("f1", 1) == 1 and evaluation.get("loss") == 0.3
    assert evaluation.accuracy == 0.9 and evaluation == {"loss": 0.3, "accuracy": 0.9}
    with pytest.raises(TypeError):
        evaluation["loss"] = 1.0  # type: ignore[index]
    with pytest.raises(KeyError, match=r"'f1'. Available: \['accuracy', 'loss'\]"):
        evaluation["f1"]
    with pytest.raises(AttributeError, match=r"'f1'. Available: \['accuracy', 'loss'\]"):
        _ = evaluation.f1
    shadowed = Evaluation({"values": 1.0})
    assert shadowed["values"] == 1.0 and callable(shadowed.values)


def test_evaluation_timestamp_as_pyblaze_v1():
    # PyBlaze v1 (pyblaze/nn/engine/base.py, train) merges Evaluation({'_timestamp': time.time()})
    # into the metrics passed to after_epoch, once the epoch's metrics are complete.
    before = time.time()
    evaluation = Evaluation({"loss": 0.3})
    after = time.time()
    assert before <= evaluation["_timestamp"] <= after
    assert evaluation.with_prefix("val_")["_timestamp"] == evaluation["_timestamp"]
    assert evaluation.keys == ["loss"] and dict(evaluation) == {"loss": 0.3}  # not listed
    assert Evaluation({"_timestamp": 1.0})["_timestamp"] == 1.0
