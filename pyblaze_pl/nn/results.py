"""Results of training and evaluation: :class:`History` and :class:`Evaluation`."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any

from pyblaze_pl._io import atomic_write, require_file

_FORMAT = "pyblaze_pl.History"


class _MetricsAsAttributes:
    """Metrics readable as attributes: ``obj.name`` is ``obj["name"]``, with an AttributeError
    (that lists the metrics) for unknown names."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(e.args[0]) from None


class History(_MetricsAsAttributes):
    """Metrics recorded while training, one record per epoch.

    Every key is available as an attribute and as an item: ``micro_train_loss`` is the loss of
    every batch of every epoch (flat), ``train_loss`` the per-epoch mean of the batch losses, and
    ``val_loss`` / ``val_<metric>`` the values computed on the validation data after each epoch.
    An epoch in which a key was not computed (validation skipped, say) holds NaN for it.

    Example:
        >>> history = History(1.5, [{"micro_train_loss": [0.9, 0.7], "train_loss": 0.8}])
        >>> history.train_loss, len(history)
        ([0.8], 1)
    """

    def __init__(self, duration: float = 0.0, metrics: Iterable[dict[str, Any]] = ()) -> None:
        self.duration = float(duration)
        self._metrics = [dict(m) for m in metrics]

    @property
    def keys(self) -> list[str]:
        """The sorted names of the recorded metrics."""
        return sorted({k for m in self._metrics for k in m})

    def to_dict(self) -> dict[str, list]:
        """All metrics as a plain ``dict`` of lists (``micro_train_loss`` flat)."""
        return {k: self[k] for k in self.keys}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the history to ``path`` as JSON, atomically.

        Example:
            >>> history.save("runs/history.json")  # doctest: +SKIP
        """
        content = {"format": _FORMAT, "version": 1, "duration": self.duration}
        content["metrics"] = self._metrics
        atomic_write(path, lambda f: json.dump(content, f, indent=2, sort_keys=True), binary=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Reads a history written by :meth:`save` or by PyBlaze v1's ``History.save``.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file is not a history file.
        """
        path = require_file(path, "a History JSON file")
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            metrics = content["metrics"]
            if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
                raise TypeError("'metrics' must be a list of objects")
            return cls(content.get("duration", 0.0), metrics)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(
                f"Expected a History JSON file with 'duration' and a list of per-epoch 'metrics' "
                f"(written by History.save or PyBlaze). Received: '{path}', which could not be "
                f"read ({type(e).__name__}: {e})."
            ) from e

    @staticmethod
    def cat(first: History, second: History) -> History:
        """Concatenates two histories, e.g. of two consecutive ``fit`` calls."""
        return History(first.duration + second.duration, first._metrics + second._metrics)

    def plot(self, keys: Iterable[str] | None = None):  # -> matplotlib.figure.Figure (lazy import)
        """Plots the per-epoch losses and metrics (and the per-batch loss as a faint line).

        Args:
            keys: The per-epoch keys to plot; all of them by default.

        Returns:
            A ``matplotlib.figure.Figure``; no window is opened.
        """
        from pyblaze_pl.nn._plot import plot_history

        return plot_history(self, keys)

    def __len__(self) -> int:
        return len(self._metrics)

    def __contains__(self, key: object) -> bool:
        return any(key in m for m in self._metrics)

    def __getitem__(self, key: str) -> list:
        if key not in self:
            raise KeyError(f"History has no metric {key!r}. Available: {self.keys}.")
        if key == "micro_train_loss":
            return [x for m in self._metrics for x in m.get(key, [])]
        return [m.get(key, math.nan) for m in self._metrics]

    def __getstate__(self) -> dict[str, Any]:
        return {"duration": self.duration, "metrics": self._metrics}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["duration"], state["metrics"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return self.duration == other.duration and self._metrics == other._metrics

    def __repr__(self) -> str:
        last = self._metrics[-1] if self._metrics else {}
        last = ", ".join(f"{k}={v:.5f}" for k, v in sorted(last.items()) if isinstance(v, float))
        return f"History(epochs={len(self)}, duration={self.duration:.2f}s, last: {last or '-'})"


class Evaluation(_MetricsAsAttributes):
    """Metrics computed on a data set, available as attributes and items.

    Example:
        >>> evaluation = Evaluation({"accuracy": 0.9})
        >>> evaluation.accuracy, evaluation["accuracy"], evaluation.keys
        (0.9, 0.9, ['accuracy'])
    """

    def __init__(self, metrics: dict[str, float]) -> None:
        self._metrics = dict(metrics)

    @property
    def keys(self) -> list[str]:
        """The sorted names of the metrics."""
        return sorted(self._metrics)

    def to_dict(self) -> dict[str, float]:
        """The metrics as a plain ``dict`` (keys starting with ``_`` left out)."""
        return {k: v for k, v in self._metrics.items() if not k.startswith("_")}

    def with_prefix(self, prefix: str) -> Evaluation:
        """A copy whose metric names start with ``prefix`` (e.g. ``'val_'``)."""
        return Evaluation({f"{prefix}{k}": v for k, v in self._metrics.items()})

    def __contains__(self, key: object) -> bool:
        return key in self._metrics

    def __getitem__(self, key: str) -> float:
        try:
            return self._metrics[key]
        except KeyError:
            raise KeyError(f"Evaluation has no metric {key!r}. Available: {self.keys}.") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Evaluation):
            return NotImplemented
        return self._metrics == other._metrics

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v:.5f}" for k, v in sorted(self.to_dict().items()))
        return f"Evaluation({body})"
