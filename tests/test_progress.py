"""PyBlaze v1's console format (the tutorial's), and the progress loggers."""

from __future__ import annotations

import io
import re

import pytest
from conftest import make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn
from pyblaze_pl.nn.callbacks.progress import format_summary


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_summary_line_format():
    assert format_summary(10.9, {"val_loss": 1.56255, "train_loss": 1.570681234}) == (
        " [Elapsed 0:00:10] train_loss: 1.57068, val_loss: 1.56255"
    )
    assert format_summary(3725, {"b": 2, "a": float("nan")}) == (
        " [Elapsed 1:02:05] a: nan, b: 2.00000"
    )
    assert format_summary(2.5) == " [Elapsed 0:00:02]"


def fit(net, callbacks, epochs=2):
    return net.fit(
        make_loader(make_dataset(48), 16),
        val_data=make_loader(make_dataset(20, seed=2), 10),
        epochs=epochs,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=callbacks,
    )


def test_batch_progress_logger_prints_the_tutorial_log(net, capsys):
    history = fit(net, [xnn.BatchProgressLogger()])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2:" and lines[2] == "Epoch 2/2:" and len(lines) == 4
    for epoch, line in zip(range(2), lines[1::2], strict=True):
        assert line == (
            f" [Elapsed 0:00:00] train_loss: {history.train_loss[epoch]:.5f}, "
            f"val_loss: {history.val_loss[epoch]:.5f}"
        )


def test_live_bar_only_on_a_terminal(net):
    terminal = Terminal()
    fit(net, [xnn.BatchProgressLogger(file=terminal)], epochs=1)
    text = terminal.getvalue()
    assert text.startswith("Epoch 1/1:\n\x1b[2K [                              ] (0.0%) ETA n/a")
    assert "\x1b[2K [==============================] (100.0%) ETA 0:00:00" in text
    assert re.search(r"\r\x1b\[2K \[Elapsed 0:00:00\] train_loss: \d\.\d{5}, val_loss", text)


def test_progress_to_a_file_is_appended(net, tmp_path):
    path = tmp_path / "logs" / "progress.txt"
    logger = xnn.BatchProgressLogger(file=str(path))
    fit(net, [logger], epochs=1)
    fit(net, [logger], epochs=1)  # the same instance serves a second fit
    assert path.read_text().count("Epoch 1/1:\n [Elapsed") == 2


def test_epoch_progress_logger(net, capsys):
    fit(net, [xnn.EpochProgressLogger()])
    assert capsys.readouterr().out == " [Elapsed 0:00:00]\n"


def test_prediction_progress_logger(net, capsys):
    net.evaluate(make_loader(make_dataset(20), 5), callbacks=[xnn.PredictionProgressLogger()])
    net.predict(make_loader(make_dataset(20), 5), callbacks=[xnn.PredictionProgressLogger()])
    assert capsys.readouterr().out == " [Elapsed 0:00:00]\n [Elapsed 0:00:00]\n"


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_quiet_by_default(net, capfd, method):
    loader = make_loader(make_dataset(32), 16)
    if method == "fit":
        fit(net, [])
    else:
        getattr(net, method)(loader)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_real_warnings_still_show_and_logging_is_restored(net):
    import logging
    import warnings

    class Noisy(nn.Module):
        def forward(self, x):
            warnings.warn("a real warning from the model", UserWarning, stacklevel=1)
            return net(x)

    before = logging.getLogger("pytorch_lightning").level
    engine = xnn.SupervisedEngine(Noisy())
    with pytest.warns(UserWarning, match="a real warning from the model"):
        engine.train(
            make_loader(make_dataset(16), 16),
            epochs=1,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
        )
    assert logging.getLogger("pytorch_lightning").level == before
