"""PyBlaze v1's console format (the tutorial's), and the progress loggers."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import sys

import pytest
from conftest import make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn
from pyblaze_pl.nn.callbacks import _live
from pyblaze_pl.nn.callbacks._live import _fit as fit_line
from pyblaze_pl.nn.callbacks._live import live_mode
from pyblaze_pl.nn.callbacks.progress import format_summary


class Terminal(io.StringIO):
    def isatty(self):
        return True


def steady(text: str) -> str:
    """``text`` with elapsed times replaced by ``T``: a busy machine may take a second."""
    return re.sub(r"Elapsed \d+:\d\d:\d\d", "Elapsed T", text)


@pytest.fixture
def columns(monkeypatch):
    """Sets the terminal width the progress bars see."""

    def set_columns(n: int) -> None:
        size = os.terminal_size((n, 24))
        monkeypatch.setattr(shutil, "get_terminal_size", lambda *args, **kwargs: size)

    return set_columns


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
    lines = steady(capsys.readouterr().out).splitlines()
    assert lines[0] == "Epoch 1/2:" and lines[2] == "Epoch 2/2:" and len(lines) == 4
    for epoch, line in zip(range(2), lines[1::2], strict=True):
        assert line == (
            f" [Elapsed T] train_loss: {history.train_loss[epoch]:.5f}, "
            f"val_loss: {history.val_loss[epoch]:.5f}"
        )


def test_live_bar_only_on_a_terminal(net, columns):
    columns(80)
    terminal = Terminal()
    fit(net, [xnn.BatchProgressLogger(file=terminal)], epochs=1)
    text = terminal.getvalue()
    assert text.startswith("Epoch 1/1:\n\x1b[2K [                              ] (0.0%) ETA n/a")
    assert "\x1b[2K [==============================] (100.0%) ETA 0:00:00" in text
    assert re.search(r"\r\x1b\[2K \[Elapsed \d+:\d\d:\d\d\] train_loss: \d\.\d{5}, val_loss", text)


def test_progress_to_a_file_is_appended(net, tmp_path):
    path = tmp_path / "logs" / "progress.txt"
    logger = xnn.BatchProgressLogger(file=str(path))
    fit(net, [logger], epochs=1)
    fit(net, [logger], epochs=1)  # the same instance serves a second fit
    assert path.read_text().count("Epoch 1/1:\n [Elapsed") == 2


def test_epoch_progress_logger(net, capsys):
    fit(net, [xnn.EpochProgressLogger()])
    assert steady(capsys.readouterr().out) == " [Elapsed T]\n"


def test_prediction_progress_logger(net, capsys):
    net.evaluate(make_loader(make_dataset(20), 5), callbacks=[xnn.PredictionProgressLogger()])
    net.predict(make_loader(make_dataset(20), 5), callbacks=[xnn.PredictionProgressLogger()])
    assert steady(capsys.readouterr().out) == " [Elapsed T]\n [Elapsed T]\n"


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


# the live bar: terminal width, validation, interruptions


def live_lines(text: str) -> list[str]:
    """What the terminal shows line by line: every redraw (ended by \\r) and every line."""
    return [part.replace("\x1b[2K", "") for part in re.split(r"[\r\n]", text) if part]


@pytest.mark.parametrize("width", [50, 40, 30, 12])
def test_live_bar_fits_a_narrow_terminal(net, columns, width):
    columns(width)
    terminal = Terminal()
    fit(net, [xnn.BatchProgressLogger(file=terminal)], epochs=1)
    bars = [line for line in live_lines(terminal.getvalue()) if "%)" in line]
    assert bars and all(len(line) < width for line in bars)  # the last column stays free
    assert all(re.search(r"\((0\.0|33\.3|66\.7|100\.0)%\)", line) for line in bars)


def test_bar_layout_by_width():
    assert fit_line(80, 0.5, "ETA 0:00:03", "0:00:03") == (
        " [==============>               ] (50.0%) ETA 0:00:03 [Elapsed 0:00:03]"
    )
    # the bar shrinks first, then the elapsed time goes, then the ETA, then the bar
    assert fit_line(60, 0.5, "ETA 0:00:03", "0:00:03") == (
        " [========>         ] (50.0%) ETA 0:00:03 [Elapsed 0:00:03]"
    )
    assert fit_line(50, 0.5, "ETA 0:00:03", "0:00:03") == (
        " [============>             ] (50.0%) ETA 0:00:03"
    )
    assert fit_line(30, 1.0, "ETA 0:00:00", "0:00:03") == " [" + "=" * 17 + "] (100.0%)"
    assert fit_line(12, 1.0, "ETA 0:00:00", "0:00:03") == " (100.0%)"
    assert fit_line(5, 1.0, "ETA 0:00:00", "0:00:03") == " (10"


def test_validation_is_shown_while_it_runs(net, columns):
    # fit() validates 2 batches after each epoch: the bar at 100% says so instead of freezing.
    columns(100)
    terminal = Terminal()
    history = fit(net, [xnn.BatchProgressLogger(file=terminal)], epochs=1)
    lines = live_lines(steady(terminal.getvalue()))
    first = next(i for i, line in enumerate(lines) if "validating" in line)
    assert lines[first].startswith(" [==============================] (100.0%) validating 0/2 ")
    assert lines[first - 1].startswith(" [==============================] (100.0%) ETA 0:00:00 ")
    assert any(" (100.0%) validating 2/2 [Elapsed " in line for line in lines)
    assert lines[-1] == (  # the summary line keeps its format
        f" [Elapsed T] train_loss: {history.train_loss[0]:.5f}, val_loss: {history.val_loss[0]:.5f}"
    )


def test_batch_progress_logger_draws_nothing_in_evaluate(net, capsys):
    net.evaluate(make_loader(make_dataset(20), 5), callbacks=[xnn.BatchProgressLogger()])
    assert capsys.readouterr().out == ""


def test_close_ends_a_live_line_once():
    terminal = Terminal()
    logger = xnn.BatchProgressLogger(file=terminal)
    logger.before_training(None, 2)
    logger.before_epoch(0, 4)
    logger.after_batch(1.0)
    text = terminal.getvalue()
    assert text.endswith("\r")  # the bar is drawn; the cursor waits at its start
    logger.close()  # what an engine calls when an exception ends the run
    assert terminal.getvalue() == text + "\n"
    logger.close()
    logger.after_training()
    assert terminal.getvalue() == text + "\n"  # nothing more


def test_after_training_ends_a_live_line(monkeypatch):
    terminal = Terminal()
    logger = xnn.BatchProgressLogger(file=terminal)
    logger.before_training(None, 2)
    logger.before_epoch(0, 4)
    logger.after_training()  # e.g. Ctrl-C in the middle of the epoch
    assert steady(terminal.getvalue()).endswith("(0.0%) ETA n/a [Elapsed T]\r\n")
    logger.before_training(None, 2)  # an epoch that finished prints no extra line
    logger.before_epoch(0, 1)
    logger.after_batch(1.0)
    logger.after_epoch(xnn.Evaluation({"train_loss": 1.0}))
    before = terminal.getvalue()
    logger.after_training()
    assert terminal.getvalue() == before and before.endswith("train_loss: 1.00000\n")


def test_ctrl_c_message_starts_on_its_own_line(net, monkeypatch, columns):
    columns(100)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)  # the message goes to stderr, one terminal

    class CtrlC(xnn.TrainingCallback):
        def after_batch(self, train_loss):
            os.kill(os.getpid(), signal.SIGINT)

    fit(net, [xnn.BatchProgressLogger(), CtrlC()], epochs=2)
    lines = terminal.getvalue().split("\n")
    message = next(line for line in lines if "Training interrupted" in line)
    assert message.startswith("Training interrupted (KeyboardInterrupt) in epoch 1")
    assert lines[lines.index(message) - 1].endswith("\r")  # the bar's line, ended


# in a Jupyter notebook


class KernelStream(io.StringIO):
    """Stands for ipykernel's OutStream, which is sys.stdout inside a notebook."""


KernelStream.__module__ = "ipykernel.iostream"


def rendered(text: str) -> str:
    """What a notebook shows: a carriage return writes what follows over the line's start
    (trailing blanks, invisible, left out)."""
    lines = []
    for line in text.split("\n"):
        shown: list[str] = []
        for part in line.split("\r"):
            shown[: len(part)] = part
        lines.append("".join(shown).rstrip())
    return "\n".join(lines)


def test_live_mode_by_stream(tmp_path):
    closed = open(tmp_path / "log.txt", "w")  # noqa: SIM115
    closed.close()
    modes = [live_mode(s) for s in (KernelStream(), Terminal(), io.StringIO(), closed)]
    assert modes == ["notebook", "terminal", None, None]


def test_live_bar_in_a_notebook(net, monkeypatch):
    monkeypatch.setattr(_live, "_REDRAW_SECONDS", 0.0)  # every step drawn
    stream = KernelStream()
    history = fit(net, [xnn.BatchProgressLogger(file=stream)], epochs=1)
    text = stream.getvalue()
    assert "\x1b" not in text  # Jupyter reads carriage returns, not terminal codes
    frames = [f for f in re.split(r"[\r\n]", text) if f.strip()]
    percents = [m for f in frames for m in re.findall(r"\((\d+\.\d)%\) ETA", f)]
    assert percents[:4] == ["0.0", "33.3", "66.7", "100.0"]
    assert any("(100.0%) validating 2/2 [Elapsed" in f for f in frames)
    assert all(len(f) < 80 for f in frames)
    # Once done, the notebook shows PyBlaze's log and nothing of the bar (no leftovers).
    assert steady(rendered(text)) == (
        f"Epoch 1/1:\n [Elapsed T] train_loss: {history.train_loss[0]:.5f}, "
        f"val_loss: {history.val_loss[0]:.5f}\n"
    )


def test_notebook_redraws_are_rate_limited_and_cover_longer_lines(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_live.time, "monotonic", lambda: now[0])
    stream = KernelStream()
    bar = _live.ProgressBar(100, stream)
    for _ in range(100):  # 100 steps in one second
        now[0] += 0.01
        bar.step()
    draws = stream.getvalue().count("\r")
    assert 10 <= draws <= 12  # the first, about every 0.1 s, and the last step
    bar.show("validating 1/1000000", force=True)
    bar.show(None, force=True)  # a shorter line is padded over the longer one
    last = rendered(stream.getvalue())
    assert last == " [==============================] (100.0%) ETA 0:00:00 [Elapsed 0:00:01]"
