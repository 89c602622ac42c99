"""Progress in PyBlaze's format, on a terminal, in a Jupyter notebook, or in a file.

The live line itself (its layout, where it is drawn, the rate limit) is in ``_live.py``.
"""

from __future__ import annotations

import io
import os
import sys
from typing import IO, Any

from torch import nn

from pyblaze_pl.nn.callbacks._live import ProgressBar, format_summary
from pyblaze_pl.nn.callbacks.base import PredictionCallback, TrainingCallback, is_global_zero
from pyblaze_pl.nn.results import Evaluation

__all__ = [
    "BatchProgressLogger",
    "EpochProgressLogger",
    "PredictionProgressLogger",
    "format_summary",
]

Output = str | os.PathLike | IO[str] | None


class _Nowhere(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


_NOWHERE = _Nowhere()


def _validating(done: int, total: int | None) -> str:
    """The status while validation runs: ``validating 3/10``, or ``validating 3`` (batches done)
    for validation data of unknown length.

    Example:
        >>> _validating(3, 10), _validating(3, None)
        ('validating 3/10', 'validating 3')
    """
    return f"validating {done}" if total is None else f"validating {done}/{total}"


class _ConsoleCallback:
    """Resolves the output (stdout, a stream, or a file opened in append mode for one run)."""

    def __init__(self, file: Output = None) -> None:
        self.file = file
        self._opened: IO[str] | None = None
        self.progress: ProgressBar | None = None

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
    ``validating <batch>/<batches>`` instead of the ETA (``validating <batch>`` for validation
    data of unknown length). The bar is drawn live on a terminal and in a Jupyter notebook (at
    most 10 times a second); written to a file or a pipe, only the ``Epoch`` and summary lines
    are. Training data of unknown length shows a running count of batches instead of the bar.

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
        self.progress = ProgressBar(num_iterations, stream)

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
        self.progress.show(_validating(done, total), force=total is not None and done >= total)

    def before_predictions(self, model: nn.Module, num_iterations: int | None) -> None:
        if self.progress is not None:  # validation inside fit; evaluate/predict draw nothing
            self._validation = [0, num_iterations]
            self.progress.show(_validating(0, num_iterations), force=True)

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
        self.progress = ProgressBar(num_epochs, self._open())

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
        self.progress = ProgressBar(num_iterations, self._open())

    def after_batch(self, *args: Any) -> None:
        if self.progress is not None:
            self.progress.step()

    def after_predictions(self) -> None:
        if self.progress is not None:
            self.progress.finish()
        self.close()
