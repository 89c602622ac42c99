"""Console progress in PyBlaze's format."""

from __future__ import annotations

import datetime
import io
import os
import sys
import time
from typing import IO, Any

from torch import nn

from pyblaze_pl.nn.callbacks.base import PredictionCallback, TrainingCallback, is_global_zero
from pyblaze_pl.nn.results import Evaluation

_ERASE_LINE = "\x1b[2K"
_WIDTH = 30
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


class _ProgressBar:
    """A bar over ``total`` steps. The live bar is drawn only on a terminal (at most 10 times a
    second); the summary line is always printed."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.live = stream.isatty() if hasattr(stream, "isatty") else False
        self.current = 0
        self.start_time = time.monotonic()
        self._drawn_at = -_REDRAW_SECONDS
        self._draw()

    def step(self) -> None:
        self.current += 1
        if self.live and (
            self.current >= self.total or time.monotonic() - self._drawn_at >= _REDRAW_SECONDS
        ):
            self._draw()

    def finish(self, metrics: dict[str, float] | None = None) -> None:
        prefix = _ERASE_LINE if self.live else ""
        line = format_summary(time.monotonic() - self.start_time, metrics)
        print(prefix + line, file=self.stream, flush=True)

    def _draw(self) -> None:
        if not self.live:
            return
        now = time.monotonic()
        self._drawn_at = now
        fraction = min(self.current / self.total, 1.0)
        filled = round(fraction * _WIDTH)
        bar = "=" * _WIDTH if filled >= _WIDTH else ("=" * (filled - 1) + ">" if filled else "")
        elapsed = now - self.start_time
        eta = _elapsed((1 - fraction) / fraction * elapsed) if fraction else "n/a"
        print(
            f"{_ERASE_LINE} [{bar:<{_WIDTH}}] ({fraction:.1%}) ETA {eta} "
            f"[Elapsed {_elapsed(elapsed)}]",
            end="\r",
            file=self.stream,
            flush=True,
        )


class _ConsoleCallback:
    """Resolves the output (stdout, a stream, or a file opened in append mode for one run)."""

    def __init__(self, file: Output = None) -> None:
        self.file = file
        self._opened: IO[str] | None = None

    def _open(self) -> IO[str]:
        if not is_global_zero():  # several processes (DDP): only the first one prints
            return _NOWHERE
        if self.file is None:
            return sys.stdout
        if isinstance(self.file, (str, os.PathLike)):
            if self._opened is None:
                path = os.path.expanduser(self.file)
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                self._opened = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in _close
            return self._opened
        return self.file

    def _close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None


class BatchProgressLogger(_ConsoleCallback, TrainingCallback):
    """Prints ``Epoch i/n:``, a live bar over the epoch's batches and the epoch's metrics.

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
        self.progress: _ProgressBar | None = None

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self.num_epochs = num_epochs
        self.progress = None

    def before_epoch(self, current: int, num_iterations: int) -> None:
        stream = self._open()
        print(f"Epoch {current + 1}/{self.num_epochs}:", file=stream, flush=True)
        self.progress = _ProgressBar(num_iterations, stream)

    after_batch_receives = "tensor"  # no host sync per batch

    def after_batch(self, train_loss: Any) -> None:
        if self.progress is not None:
            self.progress.step()

    def after_epoch(self, metrics: Evaluation) -> None:
        if self.progress is not None:
            self.progress.finish(metrics.to_dict())
            self.progress = None

    def after_training(self) -> None:
        self.progress = None
        self._close()


class EpochProgressLogger(_ConsoleCallback, TrainingCallback):
    """Prints one live bar over all epochs and the total elapsed time.

    Args:
        file: Where to write: standard output (default), a text stream, or a path (appended to).
    """

    def __init__(self, file: Output = None) -> None:
        super().__init__(file)
        self.progress: _ProgressBar | None = None

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        self.progress = _ProgressBar(num_epochs, self._open())

    def after_epoch(self, metrics: Evaluation) -> None:
        if self.progress is not None:
            self.progress.step()

    def after_training(self) -> None:
        if self.progress is not None:
            self.progress.finish()
            self.progress = None
        self._close()


class PredictionProgressLogger(_ConsoleCallback, PredictionCallback):
    """Prints a live bar over the batches of ``evaluate``/``predict`` and the elapsed time.

    Args:
        file: Where to write: standard output (default), a text stream, or a path (appended to).
    """

    def __init__(self, file: Output = None) -> None:
        super().__init__(file)
        self.progress: _ProgressBar | None = None

    def before_predictions(self, model: nn.Module, num_iterations: int) -> None:
        self.progress = _ProgressBar(num_iterations, self._open())

    def after_batch(self, *args: Any) -> None:
        if self.progress is not None:
            self.progress.step()

    def after_predictions(self) -> None:
        if self.progress is not None:
            self.progress.finish()
            self.progress = None
        self._close()
