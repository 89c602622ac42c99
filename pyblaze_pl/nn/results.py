"""Results of training and evaluation: :class:`History` and :class:`Evaluation`."""

from __future__ import annotations

import json
import math
import os
import reprlib
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pyblaze_pl._files import read_json
from pyblaze_pl._io import atomic_write, require_file
from pyblaze_pl._signals import deferred_sigint
from pyblaze_pl.nn._html import evaluation_table, history_table

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60

# PyBlaze 2.x names of History values (pyblaze/nn/engine/_history.py in PyBlaze 2.3.2, where
# `loss` is the per-epoch mean of the batch losses and `batch_loss` every batch's loss).
_HISTORY_ALIASES = {"loss": "train_loss", "batch_loss": "micro_train_loss"}
_REMOVED = {
    "inspect": "History.inspect (PyBlaze 2.x) is not available: the library records no "
    "timestamps per value. Use history[name] or history.<name> for the values."
}


class Keys(list):
    """The sorted metric names: a list (PyBlaze v1's ``history.keys`` / ``evaluation.keys`` is a
    property) that can also be called (``metrics.keys()``, as on a dict or in PyBlaze 2.x
    callbacks); calling it returns the list itself.

    Example:
        >>> keys = Keys(["accuracy", "loss"])
        >>> keys == keys() == ["accuracy", "loss"]
        True
    """

    def __call__(self) -> Keys:
        return self


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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _per_batch(key: str) -> bool:
    """Keys holding one value per batch: ``micro_train_loss`` and PyBlaze 2.x's ``batch_*``
    values of engines that record several per batch (``WGANEngine``: ``batch_em_distance``)."""
    return key == "micro_train_loss" or key.startswith("batch_")


def _checked_epoch(epoch: Any, epochs: int) -> int | None:
    """``restored_epoch`` checked: None or an epoch of the History (1..epochs)."""
    if epoch is None:
        return None
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
        raise ValueError(
            f"Expected restored_epoch to be None or an epoch of the History, 1..{epochs}. "
            f"Received: {epoch!r}."
        )
    return epoch


def _checked_record(record: Any, index: int) -> dict[str, Any]:
    """One epoch of a History file with its values as floats; ValueError naming what is wrong."""
    where = f"metrics[{index}] (epoch {index + 1})"
    if not isinstance(record, dict):
        raise ValueError(
            f"{where}: expected an object of metric values, received "
            f"{_repr.repr(record)} ({type(record).__name__})"
        )
    checked: dict[str, Any] = {}
    for key, value in record.items():
        if key == "micro_train_loss" or (_per_batch(key) and isinstance(value, list)):
            if isinstance(value, list) and all(_number(v) for v in value):
                checked[key] = [float(v) for v in value]
                continue
            expected = "a list of numbers (one loss per batch)"
        elif _number(value):
            checked[key] = float(value)
            continue
        else:
            expected = "a number (NaN allowed)"
        raise ValueError(
            f"{where}[{key!r}]: expected {expected}, received {_repr.repr(value)} "
            f"({type(value).__name__})"
        )
    return checked


class History(_MetricsAsAttributes):
    """Metrics recorded while training, one record per epoch.

    Every key is available as an attribute and as an item: ``micro_train_loss`` is the loss of
    every batch of every epoch (flat), ``train_loss`` the per-epoch mean of the batch losses, and
    ``val_loss`` / ``val_<metric>`` the values computed on the validation data after each epoch.
    An epoch in which a key was not computed (validation skipped, say) holds NaN for it.
    PyBlaze 2.x's names work as attributes too: ``history.loss`` is ``train_loss`` and
    ``history.batch_loss`` is ``micro_train_loss`` (unless the History has keys of those names).

    ``restored_epoch`` is the epoch (from 1) whose weights were loaded back when training ended
    (``EarlyStopping(restore_best=True)``), or None. In Jupyter a History shows as a table of
    epochs and metrics, with that epoch marked; its text repr is unchanged. ``save`` does not
    write ``restored_epoch`` (the file keeps PyBlaze v1's format).

    Example:
        >>> history = History(1.5, [{"micro_train_loss": [0.9, 0.7], "train_loss": 0.8}])
        >>> history.train_loss, len(history), history.keys, history.loss
        ([0.8], 1, ['micro_train_loss', 'train_loss'], [0.8])
    """

    def __init__(
        self,
        duration: float = 0.0,
        metrics: Iterable[dict[str, Any]] = (),
        restored_epoch: int | None = None,
    ) -> None:
        self.duration = float(duration)
        self._metrics = [dict(m) for m in metrics]
        self.restored_epoch = _checked_epoch(restored_epoch, len(self._metrics))

    @property
    def keys(self) -> Keys:
        """The sorted names of the recorded metrics (a list, also callable: ``keys()``)."""
        return Keys(sorted({k for m in self._metrics for k in m}))

    def to_dict(self) -> dict[str, list]:
        """All metrics as a plain ``dict`` of lists (``micro_train_loss`` flat)."""
        return {k: self[k] for k in self.keys}

    def _records(self) -> list[dict[str, Any]]:
        """The per-epoch records, each with every key (NaN or ``[]`` where it is missing)."""
        keys = self.keys
        return [
            {k: m.get(k, [] if _per_batch(k) else math.nan) for k in keys} for m in self._metrics
        ]

    def save(self, path: str | os.PathLike) -> None:
        """Writes the history to ``path`` as JSON, atomically, in PyBlaze v1's format
        (``{"duration": ..., "metrics": [...]}``), which PyBlaze v1's ``History.load`` reads.
        Every epoch holds every key (NaN, or no batch losses, where it was not computed), as
        PyBlaze v1 reads the keys of the first epoch from every epoch.

        Example:
            >>> history.save("runs/history.json")  # doctest: +SKIP
        """
        content = {"duration": self.duration, "metrics": self._records()}
        atomic_write(path, lambda f: json.dump(content, f, indent=4, sort_keys=True), binary=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Reads a history written by :meth:`save` (also by earlier versions of the library) or
        by PyBlaze v1's ``History.save``, checking every value.

        Raises:
            FileNotFoundError: If ``path`` does not exist (``IsADirectoryError`` for a directory).
            ValueError: If the file is not a history file; the message names the file and says
                what it is (empty, binary such as a torch file, truncated JSON, ...) or names the
                first wrong value (its epoch and key, what was expected and received).

        Example:
            >>> history = History.load("runs/history.json")  # doctest: +SKIP
        """
        path = require_file(path, "a History JSON file")
        expected = (
            f"Expected '{path}' to hold a History: a JSON object with 'duration' (seconds) and "
            f"'metrics', a list with one object of metric values per epoch (written by "
            f"History.save or PyBlaze)."
        )
        content = read_json(path, expected)
        if not isinstance(content, dict) or not isinstance(content.get("metrics"), list):
            if not isinstance(content, dict):
                received = f"a JSON {type(content).__name__}"
            elif "metrics" in content:
                metrics = content["metrics"]
                received = f"'metrics' is a {type(metrics).__name__}, not a list of records"
            else:
                received = f"an object without 'metrics' (keys {sorted(content)})"
            raise ValueError(f"{expected} Received: {received}.")
        duration = content.get("duration", 0.0)
        if not _number(duration):
            raise ValueError(
                f"{expected} Received: 'duration' {_repr.repr(duration)} "
                f"({type(duration).__name__}), expected a number."
            )
        try:
            metrics = [_checked_record(m, i) for i, m in enumerate(content["metrics"])]
        except ValueError as e:
            raise ValueError(f"{expected} Received: {e}.") from None
        return cls(duration, metrics)

    @staticmethod
    def cat(first: History, second: History) -> History:
        """Concatenates two histories, e.g. of two consecutive ``fit`` calls."""
        restored = second.restored_epoch
        restored = None if restored is None else len(first) + restored
        metrics = first._metrics + second._metrics
        return History(first.duration + second.duration, metrics, restored)

    def plot(self, keys: Iterable[str] | None = None):  # -> matplotlib.figure.Figure (lazy import)
        """Plots the losses and metrics: one panel for the losses, one for the other metrics,
        with titles, axis labels and integer epoch ticks from 1. The per-batch loss
        (``micro_train_loss``) is drawn within its epochs, faint next to per-epoch losses.

        Args:
            keys: The keys to plot (``micro_train_loss`` included); all of them by default.

        Returns:
            A ``matplotlib.figure.Figure``; no window is opened. Jupyter displays it inline
            (also in a notebook that never imported pyplot); a script saves it with ``savefig``.

        Raises:
            ValueError: If a key is not in the History; the message lists the valid keys.

        Example:
            >>> history.plot(["train_loss", "val_loss"]).savefig("loss.png")  # doctest: +SKIP
        """
        valid = [k for k in self.keys if k == "micro_train_loss" or not _per_batch(k)]
        keys = list(valid) if keys is None else list(keys)
        unknown = [k for k in keys if k not in valid]
        if unknown:
            per_batch = [k for k in unknown if k in self]
            hint = (
                f" Per-batch values other than micro_train_loss ({per_batch}) are not drawn: "
                f"plot them directly, e.g. plt.plot(history[{per_batch[0]!r}])."
                if per_batch
                else ""
            )
            raise ValueError(
                f"Expected History keys to plot. Received: {unknown}. Valid: {valid}.{hint}"
            )
        with deferred_sigint():
            from pyblaze_pl.nn._plot import BATCHES, plot_history  # matplotlib, when plotting

        batches = [len(record.get(BATCHES, [])) for record in self._metrics]
        return plot_history({k: self[k] for k in keys}, batches)

    def __len__(self) -> int:
        return len(self._metrics)

    def __contains__(self, key: object) -> bool:
        return any(key in m for m in self._metrics)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in self:
            return super().__getattr__(name)
        if name in _REMOVED:
            raise AttributeError(_REMOVED[name])
        if name in _HISTORY_ALIASES:
            key = _HISTORY_ALIASES[name]
            if key not in self:
                raise AttributeError(
                    f"History has no metric {name!r} (PyBlaze 2.x's name for {key!r}). "
                    f"Available: {self.keys}."
                )
            return self[key]
        return super().__getattr__(name)

    def __getitem__(self, key: str) -> list:
        if key not in self:
            raise KeyError(f"History has no metric {key!r}. Available: {self.keys}.")
        if _per_batch(key):  # flat over all epochs
            values = (m.get(key, []) for m in self._metrics)
            return [x for v in values for x in (v if isinstance(v, list) else [v])]
        return [m.get(key, math.nan) for m in self._metrics]

    def __getstate__(self) -> dict[str, Any]:
        return {
            "duration": self.duration,
            "metrics": self._metrics,
            "restored_epoch": self.restored_epoch,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["duration"], state["metrics"], state.get("restored_epoch"))

    def __eq__(self, other: object) -> bool:
        """Same duration, keys and values; NaN equals NaN (it stands for a value not computed)."""
        if not isinstance(other, History):
            return NotImplemented
        return self.duration == other.duration and _equal(self._records(), other._records())

    def __repr__(self) -> str:
        last = self._metrics[-1] if self._metrics else {}
        last = ", ".join(f"{k}={v:.5f}" for k, v in sorted(last.items()) if isinstance(v, float))
        return f"History(epochs={len(self)}, duration={self.duration:.2f}s, last: {last or '-'})"

    def _repr_html_(self) -> str:
        """The table Jupyter shows: one row per epoch, one column per metric (every batch's
        loss left out), the restored epoch marked."""
        columns = {k: self[k] for k in self.keys if not _per_batch(k)}
        return history_table(columns, len(self), self.duration, self.restored_epoch)


class Evaluation(_MetricsAsAttributes, Mapping):
    """Metrics computed on a data set: a read-only mapping (``dict(evaluation)``, ``.items()``,
    ``.get()``, ``in``, ``len``) whose values are also attributes.

    ``keys`` is PyBlaze v1's property, the sorted list of names, and can also be called as on a
    dict (``evaluation.keys()`` returns the same list). Iteration follows the sorted names. A
    metric whose name is also a method (``items``, ``values``, ``get``, ``keys``) is read as an
    item: ``evaluation["values"]``.

    ``evaluation["_timestamp"]`` is, as in PyBlaze v1, the time (``time.time()``) when the
    metrics were complete (the Evaluation was created) unless given; it is not listed in ``keys``.

    Example:
        >>> evaluation = Evaluation({"loss": 0.3, "accuracy": 0.9})
        >>> evaluation.accuracy, evaluation["accuracy"], evaluation.keys, evaluation.keys()
        (0.9, 0.9, ['accuracy', 'loss'], ['accuracy', 'loss'])
        >>> dict(evaluation), evaluation.get("f1", 0.0)
        ({'accuracy': 0.9, 'loss': 0.3}, 0.0)
    """

    def __init__(self, metrics: Mapping[str, float]) -> None:
        self._metrics = dict(metrics)
        self._created = time.time()

    @property
    def keys(self) -> Keys:  # type: ignore[override]
        """The sorted names of the metrics (a list, also callable: ``keys()``)."""
        return Keys(sorted(self._metrics))

    def to_dict(self) -> dict[str, float]:
        """The metrics as a plain ``dict`` (keys starting with ``_`` left out)."""
        return {k: v for k, v in self._metrics.items() if not k.startswith("_")}

    @staticmethod
    def merge(first: Evaluation, second: Evaluation, *others: Evaluation) -> Evaluation:
        """One evaluation with the metrics of all, later ones winning on equal names (PyBlaze
        v1's ``Evaluation.merge``).

        Example:
            >>> Evaluation.merge(Evaluation({"a": 1.0}), Evaluation({"b": 2.0})).keys
            ['a', 'b']
        """
        return Evaluation({k: v for e in (first, second, *others) for k, v in e._metrics.items()})

    def with_prefix(self, prefix: str) -> Evaluation:
        """A copy whose metric names start with ``prefix`` (e.g. ``'val_'``)."""
        result = Evaluation({f"{prefix}{k}": v for k, v in self._metrics.items()})
        result._created = self._created
        return result

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self._metrics)

    def __getitem__(self, key: str) -> float:
        try:
            return self._metrics[key]
        except KeyError:
            if key == "_timestamp":
                return self._created
            raise KeyError(f"Evaluation has no metric {key!r}. Available: {self.keys}.") from None

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v:.5f}" for k, v in sorted(self.to_dict().items()))
        return f"Evaluation({body})"

    def _repr_html_(self) -> str:
        """The table Jupyter shows: one row per metric."""
        return evaluation_table(self.to_dict())
