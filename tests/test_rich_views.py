"""What Jupyter shows for History, Evaluation and History.plot (without a kernel: IPython's
display formatter, the one a kernel uses), the restored epoch, and the one-way imports of the
modules that draw them."""

from __future__ import annotations

import ast
import math
import pickle
import re
from pathlib import Path

import pytest
import torch
from conftest import make_dataset, make_loader
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure
from torch import nn, optim

import pyblaze_pl.nn as xnn
from pyblaze_pl.nn._html import _shown_epochs
from pyblaze_pl.nn.results import Evaluation, History

PACKAGE = Path(__file__).resolve().parents[1] / "pyblaze_pl"


def shown(obj) -> dict:
    """The MIME bundle Jupyter displays for ``obj``."""
    data, _ = DisplayFormatter().format(obj)
    return data


def rows(html: str) -> list[list[str]]:
    body = html[html.index("<tbody>") :]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr.*?</tr>", body)]


def history(epochs: int = 3, restored: int | None = None) -> History:
    records = [
        {"micro_train_loss": [1.0 / e], "train_loss": 1.0 / e, "val_loss": 2.0 / e}
        for e in range(1, epochs + 1)
    ]
    records[0]["val_loss"] = math.nan  # not computed in epoch 1
    return History(12.5, records, restored)


def test_history_shows_as_a_table_of_epochs_and_metrics():
    data = shown(history())
    assert data["text/plain"] == repr(history())  # the text repr stays
    html = data["text/html"]
    assert "<th>epoch</th><th>train_loss</th><th>val_loss</th></tr>" in html  # no batch losses
    assert "<caption>History: 3 epochs in 12.50 s</caption>" in html
    assert rows(html) == [
        ["1", "1.00000", "nan"],
        ["2", "0.50000", "1.00000"],
        ["3", "0.33333", "0.66667"],
    ]
    assert "restored" not in html


def test_the_restored_epoch_is_marked():
    html = shown(history(restored=2))["text/html"]
    assert "weights of epoch 2 restored (best epoch)" in html
    assert rows(html)[1] == ["2 (restored)", "0.50000", "1.00000"]
    assert re.search(r'<tr class="restored"[^>]*><td>2 \(restored\)', html)
    assert rows(html)[0][0] == "1" and rows(html)[2][0] == "3"


def test_long_histories_show_first_last_and_restored_epochs():
    html = shown(history(epochs=60, restored=30))["text/html"]
    epochs = [row[0] for row in rows(html)]
    expected = [*map(str, range(1, 11)), "&hellip;", "30 (restored)", "&hellip;"]
    assert epochs == expected + [str(e) for e in range(51, 61)]
    assert _shown_epochs(25, None) == list(range(1, 26))  # short enough: every epoch


def test_names_are_escaped():
    html = shown(History(0.0, [{"val_<b>": 1.0}]))["text/html"]
    assert "<th>val_&lt;b&gt;</th>" in html and "<b>" not in html


def test_restored_epoch_is_checked_kept_and_shifted_by_cat():
    with pytest.raises(ValueError, match=r"restored_epoch.*1\.\.3\. Received: 4\."):
        history(restored=4)
    with pytest.raises(ValueError, match=r"Received: True"):
        history(restored=True)
    assert pickle.loads(pickle.dumps(history(restored=2))).restored_epoch == 2
    assert History.cat(history(restored=2), history(restored=3)).restored_epoch == 6
    assert History.cat(history(restored=2), history()).restored_epoch is None


def test_evaluation_shows_as_a_table():
    evaluation = Evaluation({"loss": 0.25, "accuracy": 0.9, "_private": 1.0})
    data = shown(evaluation)
    assert data["text/plain"] == "Evaluation(accuracy=0.90000, loss=0.25000)"
    assert rows(data["text/html"]) == [["accuracy", "0.90000"], ["loss", "0.25000"]]


def test_plot_displays_inline_without_pyplot(tmp_path):
    # A plain Figure shows as text where pyplot has not set up its inline backend...
    assert set(shown(Figure())) == {"text/plain"}
    figure = history().plot()
    # ... History.plot's figure shows as an image there too, and still saves as before.
    data = shown(figure)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert data["text/plain"].startswith("<HistoryFigure size 640x400 with 1 Axes>")
    figure.savefig(tmp_path / "history.png")
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"


def test_early_stopping_records_the_restored_epoch():
    model = nn.Linear(2, 1)
    stopper = xnn.EarlyStopping(patience=2, restore_best=True)
    stopper.before_training(model, 10)
    for loss in (3.0, 1.0, 2.0):
        stopper.after_epoch(xnn.Evaluation({"val_loss": loss}))
    with pytest.raises(xnn.CallbackException):
        stopper.after_epoch(xnn.Evaluation({"val_loss": 2.0}))
    stopper.after_training()
    assert (stopper.best_epoch, stopper.restored_epoch) == (2, 2)
    stopper.before_training(model, 10)  # reset; the last epoch is the best: nothing restored
    stopper.after_epoch(xnn.Evaluation({"val_loss": 1.0}))
    stopper.after_training()
    assert (stopper.best_epoch, stopper.restored_epoch) == (1, None)
    assert "best_epoch" in stopper.state_dict()


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any level (functions and TYPE_CHECKING blocks too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("module", ["nn/_plot.py", "nn/_html.py", "nn/callbacks/_live.py"])
def test_views_import_nothing_of_the_package(module):
    # results.py imports _html (and _plot, lazily); they take plain data, so there is no cycle.
    imported = imported_modules(PACKAGE / module)
    assert not [m for m in imported if m.startswith(("pyblaze_pl", "."))], imported


def test_the_import_check_sees_function_level_imports(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from pyblaze_pl.nn import results\n    from . import x\n")
    assert imported_modules(source) == {"pyblaze_pl.nn", "."}


@pytest.mark.parametrize("runner", ["trainer", "fabric"])
def test_fit_records_the_restored_epoch(net, runner):
    scores = iter([3.0, 1.0, 2.0, 2.0, 2.0])
    history = net.fit(
        make_loader(make_dataset(32), 16),
        val_data=make_loader(make_dataset(20, seed=5), 10),
        epochs=10,
        optimizer=optim.SGD(net.parameters(), lr=0.5),
        loss=nn.CrossEntropyLoss(),
        metrics={"score": lambda y_pred, y_true: torch.tensor(next(scores))},
        callbacks=[xnn.EarlyStopping("val_score", patience=3, restore_best=True)],
        runner=runner,
    )
    assert len(history) == 5 and history.restored_epoch == 2
    assert "weights of epoch 2 restored" in history._repr_html_()
