"""The live progress line of the progress loggers: on a terminal and in a Jupyter notebook.

Where the line is drawn depends on the output stream (:func:`live_mode`):

- ``"terminal"`` (a tty): each redraw erases the line (``ESC[2K``) and ends with a carriage
  return, fitted to the terminal's width.
- ``"notebook"`` (the output stream of a Jupyter/IPython kernel): each redraw overwrites the line
  with a carriage return, as PyBlaze's bar did and as Jupyter renders it, padded with spaces so a
  shorter line covers a longer one (Jupyter does not read ANSI erase codes). The width is fixed.
- ``None`` (files, pipes, ``io.StringIO``): no live line, only the summary lines.

Redraws are rate-limited in both live modes (at most 10 a second, plus the last step).
"""

from __future__ import annotations

import datetime
import shutil
import time
from typing import IO, Literal

_ERASE_LINE = "\x1b[2K"
_WIDTH = 30  # the widest bar; narrower terminals get a narrower one
_MIN_BAR = 10  # narrower than this, the bar is left out
_REDRAW_SECONDS = 0.1
_NOTEBOOK_COLUMNS = 80  # a notebook's output has no terminal width; this fits a cell

LiveMode = Literal["terminal", "notebook"]


def _elapsed(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=int(seconds))


def is_kernel_stream(stream: object) -> bool:
    """Whether ``stream`` is an output stream of a Jupyter (IPython) kernel, which a notebook
    renders: ``sys.stdout`` / ``sys.stderr`` inside Jupyter, VS Code or Colab notebooks.

    Example:
        >>> import io
        >>> is_kernel_stream(io.StringIO())
        False
    """
    return type(stream).__module__.split(".")[0] == "ipykernel"


def live_mode(stream: object) -> LiveMode | None:
    """How a live line can be drawn on ``stream``: ``"notebook"`` for a Jupyter kernel's output,
    ``"terminal"`` for a tty, ``None`` for anything else (files, pipes, string buffers).

    Example:
        >>> import io
        >>> live_mode(io.StringIO()) is None
        True
    """
    if is_kernel_stream(stream):
        return "notebook"
    isatty = getattr(stream, "isatty", None)
    try:
        return "terminal" if callable(isatty) and isatty() else None
    except (ValueError, OSError):  # a closed stream
        return None


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


def _count_line(columns: int, count: int, status: str, elapsed: str) -> str:
    """The live line without a total (data of unknown length): a running count of batches, as
    tqdm shows, e.g. ``" [12 batches] 8.5 batches/s [Elapsed 0:00:01]"``; cut to ``columns - 1``.

    Example:
        >>> _count_line(80, 1, "validating 2", "0:00:01")
        ' [1 batch] validating 2 [Elapsed 0:00:01]'
    """
    noun = "batch" if count == 1 else "batches"
    line = f" [{count} {noun}]{f' {status}' if status else ''} [Elapsed {elapsed}]"
    return line[: max(columns - 1, 1)]


class ProgressBar:
    """A bar over ``total`` steps on ``stream``, drawn live on a terminal or in a notebook (see
    :func:`live_mode`), at most 10 times a second; the summary line is always printed. Without
    a total (data of unknown length) a running count of steps is drawn instead of the bar.

    Example:
        >>> import io
        >>> bar = ProgressBar(3, io.StringIO())  # not live: only the summary is written
        >>> bar.step(); bar.finish({"loss": 0.5})
        >>> bar.stream.getvalue().endswith("loss: 0.50000\\n")
        True
    """

    def __init__(self, total: int | None, stream: IO[str]) -> None:
        self.total = None if total is None else max(total, 1)
        self.stream = stream
        self.mode = live_mode(stream)
        self.live = self.mode is not None
        self.current = 0
        self.status: str | None = None  # shown instead of the ETA, e.g. "validating 3/10"
        self.start_time = time.monotonic()
        self._drawn_at = -_REDRAW_SECONDS
        self._drawn: tuple[int, str | None] | None = None  # the step and status last drawn
        self._width = 0  # the length of the line drawn (a notebook pads over it)
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
        """Prints the summary line over the live line. A count (no total) that moved since it
        was last drawn is drawn once first, so a notebook's output shows the final count."""
        if self.live and self.total is None and self._drawn != (self.current, self.status):
            self._draw()
        line = format_summary(time.monotonic() - self.start_time, metrics)
        print(self._clear() + line, file=self.stream, flush=True)
        self._line_open = False
        self._width = 0

    def close(self) -> None:
        """Ends a live line that is still drawn, so that what is printed next (a traceback, a
        message) starts on a line of its own; the bar stays visible where it stopped."""
        if self._line_open:
            print(file=self.stream, flush=True)
            self._line_open = False
            self._width = 0

    def _clear(self) -> str:
        """What erases the live line before a new one is written over it."""
        if self.mode == "terminal":
            return _ERASE_LINE
        if self.mode == "notebook" and self._width:
            return " " * self._width + "\r"
        return ""

    def _redraw(self, force: bool) -> None:
        if self.live and (force or time.monotonic() - self._drawn_at >= _REDRAW_SECONDS):
            self._draw()

    def _draw(self) -> None:
        if not self.live:
            return
        now = time.monotonic()
        self._drawn_at = now
        elapsed = now - self.start_time
        if self.mode == "notebook":
            columns = _NOTEBOOK_COLUMNS
        else:
            columns = shutil.get_terminal_size().columns
        if self.total is None:
            if self.status is None:
                rate = self.current / elapsed if elapsed > 0 and self.current else None
                status = "" if rate is None else f"{rate:.2f} batches/s"
            else:
                status = self.status
            line = _count_line(columns, self.current, status, str(_elapsed(elapsed)))
        else:
            fraction = min(self.current / self.total, 1.0)
            if self.status is None:
                eta = _elapsed((1 - fraction) / fraction * elapsed) if fraction else "n/a"
                status = f"ETA {eta}"
            else:
                status = self.status
            line = _fit(columns, fraction, status, str(_elapsed(elapsed)))
        # The line ends with a carriage return: the next one is written over it.
        padded = line.ljust(self._width) if self.mode == "notebook" else _ERASE_LINE + line
        print(padded, end="\r", file=self.stream, flush=True)
        self._drawn = (self.current, self.status)
        self._width = len(line)
        self._line_open = True
