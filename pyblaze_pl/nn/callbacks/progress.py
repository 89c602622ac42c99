"""Console progress in PyBlaze's format."""

from __future__ import annotations

import datetime
import io
import os
import shutil
import sys
import time
from typing import IO, Any

from torch import nn

from pyblaze_pl.nn.callbacks.base import PredictionCallback, TrainingCallback, is_global_zero
from pyblaze_pl.nn.results import Evaluation

_ERASE_LINE = "\x1b[2K"
_WIDTH = 30  # the widest bar; narrower terminals get a narrower one
_MIN_BAR = 10  # narrower than this, the bar is left out
_REDRAW_SECONDS = 0.1

Output = str | os.PathLike | IO[str] | None


class _Nowhere(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


_NOWHERE = _Nowhere()


def _elapsed(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=int(seconds))


def format_summary(elapsed: float, metrics: dict[str, float] | None = None) -> str:
    """The line PyBlaze prints when a bar finishes: ``[Elapsed 0:00:10] a: 1.00000, b: ...``.

    Metrics are sorted by name and printed with 5 decimals.

    Example:
        >>> format_summary(10.4, {"val_loss": 1.5, "train_loss": 2.0})
        ' [Elapsed 0:00:10] train_loss: 2.00000, val_loss: 1.50000'
    """
    values = ", ".join(f"{k}: {v:.5f}" for k, v in sorted((metrics or {}).items()))
    return f" [Elapsed {_elapsed(elapsed)}] {values}".rstrip()


def _fit(columns: int, fraction: float, status: str, elapsed: str) -> str:
    """The live line for a terminal ``columns`` wide, e.g.
    ``" [=====>    ] (50.0%) ETA 0:00:03 [Elapsed 0:00:03]"``.

    The bar shrinks (from 30 to 10 characters) to fit; if the line still does not fit, the
    elapsed time is left out (the summary line prints it), then ``status`` (the ETA or the
    validation step), then the bar. The last column is never written, so the line never wraps.

    Example:
        >>> _fit(40, 0.5, "ETA 0:00:03", "0:00:03")
        ' [=======>        ] (50.0%) ETA 0:00:03'
    """
    available = max(columns - 1, 1)
    percent = f"({fraction:.1%})"
    for tail in (f" {status} [Elapsed {elapsed}]", f" {status}", ""):
        width = min(_WIDTH, available - len(f" [] {percent}{tail}"))
        if width >= _MIN_BAR:
            filled = round(fraction * width)
            bar = "=" * width if filled >= width else ("=" * (filled - 1) + ">" if filled else "")
            return f" [{bar:<{width}}] {percent}{tail}"
    return f" {percent}"[:available]


class _ProgressBar:
    """A bar over ``total`` steps. The live bar is drawn only on a terminal (at most 10 times a
    second), fitted to the terminal's width; the summary line is always printed. Without a total
    (data of unknown length), a step counter and the elapsed time are drawn instead of the bar."""

    def __init__(self, total: int | None, stream: IO[str]) -> None:
        self.total = None if total is None else max(total, 1)
        self.stream = stream
        self.live = stream.isatty() if hasattr(stream, "isatty") else False
        self.current = 0
        self.status: str | None = None  # shown instead of the ETA, e.g. "validating 3/10"
        self.start_time = time.monotonic()
        self._drawn_at = -_REDRAW_SECONDS
        self._line_open = False  # a live line is drawn and not yet ended
        self._draw()

    def step(self) -> None:
        self.current += 1
        self._redraw(force=self.total is not None and self.current >= self.total)

    def show(self, status: str | None, force: bool = False) -> None:
        """Shows ``status`` instead of the ETA (None: the ETA again)."""
        self.status = status
        self._redraw(force)

    def finish(self, metrics: dict[str, float] | None = None) -> None:
        prefix = _ERASE_LINE if self.live else ""
        line = format_summary(time.monotonic() - self.start_time, metrics)
        print(prefix + line, file=self.stream, flush=True)
        self._line_open = False

    def close(self) -> None:
        """Ends a live line that is still drawn, so that what is printed next (a traceback, a
        message) starts on a line of its own; the bar stays visible where it stopped."""
        if self._line_open:
            print(file=self.stream, flush=True)
            self._line_open = False

    def _redraw(self, force: bool) -> None:
        if self.live and (force or time.monotonic() - self._drawn_at >= _REDRAW_SECONDS):
            self._draw()

    def _draw(self) -> None:
        if not self.live:
            return
        now = time.monotonic()
        self._drawn_at = now
        elapsed = now - self.start_time
        if self.total is None:
            status = "" if self.status is None else f" {self.status}"
            line = f" [{self.current} done]{status} [Elapsed {_elapsed(elapsed)}]"
            columns = shutil.get_terminal_size().columns
            print(_ERASE_LINE + line[: max(columns - 1, 1)], end="\r", file=self.stream, flush=True)
            self._line_open = True
            return
        fraction = min(self.current / self.total, 1.0)
        if self.status is None:
            status = f"ETA {_elapsed((1 - fraction) / fraction * elapsed) if fraction else 'n/a'}"
        else:
            status = self.status
        line = _fit(shutil.get_terminal_size().columns, fraction, status, str(_elapsed(elapsed)))
        print(_ERASE_LINE + line, end="\r", file=self.stream, flush=True)
        self._line_open = True


class _ConsoleCallback:
    """Resolves the output (stdout, a stream, or a file opened in append mode for one run)."""

    def __init__(self, file: Output = None) -> None:
        self.file = file
        self._opened: IO[str] | None = None
        self.progress: _ProgressBar | None = None

    def _open(self) -> IO[str]:
        if not is_global_zero():  # several processes (DDP): only the first one prints
            return _NOWHERE
        if self.file is None:
            return sys.stdout
        if isinstance(self.file, (str, os.PathLike)):
            if self._opened is None:
                path = os.path.expanduser(self.file)
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                self._opened = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close
            return self._opened
        return self.file

    def close(self) -> None:
        """Ends the live bar's line if one is drawn and closes a file opened for the output.

        Runs when training or predicting ends; an engine also calls it when an exception ends a
        run, so that the traceback starts on a line of its own instead of inside the bar.

        Example:
            >>> logger = BatchProgressLogger()
            >>> logger.close()  # nothing drawn: nothing printed
        """
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        if self._opened is not None:
            self._opened.close()
            self._opened = None


class BatchProgressLogger(_ConsoleCallback, TrainingCallback, PredictionCallback):
    """Prints ``Epoch i/n:``, a live bar over the epoch's batches and the epoch's metrics.

    While the validation of an epoch runs, the live bar (at 100%) shows
    ``validating <batch>/<batches>`` instead of the ETA.

    Args:
        file: Where to write: standard output (default), a text stream, or a path (appended to).

    Example:
        >>> model.fit(train_loader, callbacks=[BatchProgressLogger()])  # doctest: +SKIP
        Epoch 1/20:
         [Elapsed 0:00:10] train_loss: 2.05092, val_accuracy: 0.31800, val_loss: 1.88532
    """

    def __init__(self, file: Output = None) -> None:
        super().__init__(file)
        self.num_epochs = 0
        self._validation: list[int] | None = None  # [done, total] while validation runs

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self.num_epochs = num_epochs
        self.progress = None
        self._validation = None

    def before_epoch(self, current: int, num_iterations: int) -> None:
        stream = self._open()
        print(f"Epoch {current + 1}/{self.num_epochs}:", file=stream, flush=True)
        self.progress = _ProgressBar(num_iterations, stream)

    after_batch_receives = "tensor"  # no host sync per batch

    def after_batch(self, *args: Any) -> None:
        """A training batch (with its loss) or, while validation runs, a validation batch."""
        if self.progress is None:
            return
        if self._validation is None:
            self.progress.step()
            return
        self._validation[0] += 1
        done, total = self._validation
        if total is None:  # validation data of unknown length
            self.progress.show(f"validating {done}", force=False)
        else:
            self.progress.show(f"validating {done}/{total}", force=done >= total)

    def before_predictions(self, model: nn.Module, num_iterations: int) -> None:
        if self.progress is not None:  # validation inside fit; evaluate/predict draw nothing
            self._validation = [0, num_iterations]
            self.progress.show(f"validating 0/{num_iterations}", force=True)

    def after_predictions(self) -> None:
        if self._validation is not None and self.progress is not None:
            self.progress.show(None)  # the ETA again (validation in the middle of an epoch)
        self._validation = None

    def after_epoch(self, metrics: Evaluation) -> None:
        if self.progress is not None:
            self.progress.finish(metrics.to_dict())
            self.progress = None

    def after_training(self) -> None:
        self._validation = None
        self.close()


class EpochProgressLogger(_ConsoleCallback, TrainingCallback):
    """Prints one live bar over all epochs and the total elapsed time.

    Args:
        file: Where to write: standard output (default), a text stream, or a path (appended to).
    """

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self.progress = _ProgressBar(num_epochs, self._open())

    def after_epoch(self, metrics: Evaluation) -> None:
        if self.progress is not None:
            self.progress.step()

    def after_training(self) -> None:
        if self.progress is not None:
            self.progress.finish()
        self.close()


class PredictionProgressLogger(_ConsoleCallback, PredictionCallback):
    """Prints a live bar over the batches of ``evaluate``/``predict`` and the elapsed time.

    Args:
        file: Where to write: standard output (default), a text stream, or a path (appended to).
    """

    def before_predictions(self, model: nn.Module, num_iterations: int) -> None:
        self.progress = _ProgressBar(num_iterations, self._open())

    def after_batch(self, *args: Any) -> None:
        if self.progress is not None:
            self.progress.step()

    def after_predictions(self) -> None:
        if self.progress is not None:
            self.progress.finish()
        self.close()
