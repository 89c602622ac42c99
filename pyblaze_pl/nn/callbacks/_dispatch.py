"""Calls the hooks of a run's PyBlaze callbacks (plain Python: the run decides when)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

from torch import nn

from pyblaze_pl.nn.callbacks.base import CallbackException, PredictionCallback, TrainingCallback
from pyblaze_pl.nn.results import Evaluation

_BASE_AFTER_BATCH = (TrainingCallback.after_batch, PredictionCallback.after_batch)


def state_key(callback: object) -> str:
    """The key of a callback's state in checkpoints: its ``state_key`` attribute if it has one,
    else its class's qualified name (as Lightning's ``Callback.state_key``).

    Example:
        >>> class Counter(TrainingCallback):
        ...     pass
        >>> state_key(Counter())
        'state_key.<locals>.Counter'
    """
    key = getattr(callback, "state_key", None)
    return key if isinstance(key, str) else type(callback).__qualname__


class Dispatch:
    """The PyBlaze callbacks of one call, in order, and what they decided.

    ``before_epoch`` and ``after_epoch`` may raise :class:`CallbackException`: :attr:`stop_reason`
    then holds it, and the run stops training at the end of the epoch. The message is printed
    after ``after_training``.

    Args:
        model: The model the callbacks receive in ``before_training``/``before_predictions``.
        callbacks: The engine first, then the user's PyBlaze callbacks.
    """

    def __init__(self, model: nn.Module, callbacks: Sequence[object]) -> None:
        self.model = model
        self.training = [c for c in callbacks if isinstance(c, TrainingCallback)]
        self.prediction = [c for c in callbacks if isinstance(c, PredictionCallback)]
        # after_batch: only callbacks that override it, each with the value it asks for
        self.batch = [
            (c, getattr(c, "after_batch_receives", "float") == "float")
            for c in self.training
            if type(c).after_batch not in _BASE_AFTER_BATCH
        ]
        self._batch_float = any(as_float for _, as_float in self.batch)
        self.stop_reason: CallbackException | None = None
        self._training = False
        self._restored: dict[str, Any] = {}

    # training
    def before_training(self, num_epochs: int) -> None:
        self._training = True
        for c in self.training:
            c.before_training(self.model, num_epochs)
        self._load_restored()  # after the reset in before_training

    def before_epoch(self, current: int, num_iterations: int | None) -> bool:
        """Returns whether a callback asked to stop."""
        return self._catch(lambda c: c.before_epoch(current, num_iterations))

    def after_batch(self, loss: Any) -> None:
        """User callbacks get a float (one host sync per batch, as PyBlaze); callbacks with
        ``after_batch_receives = "tensor"`` (the library's own) get the tensor, without a sync."""
        if not self.batch:
            return
        number = float(loss) if self._batch_float else None
        for c, as_float in self.batch:
            c.after_batch(number if as_float else loss)

    def after_epoch(self, metrics: Evaluation) -> bool:
        """Returns whether a callback asked to stop."""
        return self._catch(lambda c: c.after_epoch(metrics))

    def stop(self, reason: CallbackException) -> None:
        """Records why training stops (the first reason is kept)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def after_training(self, prints: bool = True) -> None:
        """Calls ``after_training`` once per ``before_training``, then prints the stop reason."""
        if not self._training:
            return
        self._training = False
        for c in self.training:
            c.after_training()
        reason = self.stop_reason
        if reason is not None and reason.verbose and prints:
            print(reason, file=sys.stderr if getattr(reason, "to_stderr", False) else sys.stdout)

    def close(self) -> None:
        """An exception ends the call: consoles end a live line (``close()`` of the progress
        loggers), so that the traceback starts on a line of its own."""
        for c in {id(c): c for c in (*self.training, *self.prediction)}.values():
            close = getattr(c, "close", None)
            if callable(close):
                close()

    def _catch(self, hook: Any) -> bool:
        try:
            for c in self.training:
                hook(c)
        except CallbackException as e:
            self.stop(e)
            return True
        return False

    # evaluation (validation inside fit, evaluate and predict)
    def before_predictions(self, num_iterations: int | None) -> None:
        for c in self.prediction:
            c.before_predictions(self.model, num_iterations)

    def after_prediction_batch(self) -> None:
        for c in self.prediction:
            c.after_batch(None)  # as PyBlaze: no loss during predictions

    def after_predictions(self) -> None:
        for c in self.prediction:
            c.after_predictions()

    # state (EarlyStopping counters, ...) in checkpoints, keyed as Lightning keys callbacks
    def state_dict(self) -> dict[str, Any]:
        states: dict[str, Any] = {}
        for c in self.training:
            if callable(getattr(c, "state_dict", None)):
                key = state_key(c)
                if key in states:
                    raise ValueError(
                        f"Expected PyBlaze callbacks with state to have distinct state keys. "
                        f"Received two with the key {key!r}; give one a `state_key` attribute "
                        f"(a str) to tell them apart."
                    )
                states[key] = c.state_dict()
        return states

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Keeps ``states`` until ``before_training`` has reset the callbacks, then loads them."""
        self._restored = {_without_position(k): v for k, v in states.items()}

    def _load_restored(self) -> None:
        restored, self._restored = self._restored, {}
        claimed = set()
        for c in self.training:
            key = state_key(c)
            if key in restored and callable(getattr(c, "load_state_dict", None)):
                c.load_state_dict(restored[key])
                claimed.add(key)
        unclaimed = sorted(set(restored) - claimed)
        if unclaimed:
            present = sorted(state_key(c) for c in self.training)
            warnings.warn(
                f"The checkpoint holds the state of PyBlaze callbacks that no callback of this "
                f"call claims: {unclaimed}; it was not restored. Callbacks of this call: "
                f"{present}. Pass the same callbacks as the run that wrote the checkpoint.",
                UserWarning,
                stacklevel=2,
            )


def _without_position(key: str) -> str:
    """Checkpoints of release 0.1.0 keyed states as ``"<position>:<qualname>"``."""
    position, _, rest = key.partition(":")
    return rest if position.isdigit() and rest else key
