"""Ctrl-C and SIGTERM during a call: never in the middle of an optimizer step, never silent."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

from pyblaze_pl.nn.callbacks.base import CallbackException

# The exit status of a process that SIGTERM ended (128 + the signal's number), as shells report it.
SIGTERM_STATUS = 128 + signal.SIGTERM


class Terminated(SystemExit):
    """SIGTERM (how clusters and schedulers preempt jobs) ended a call: after the call's teardown
    the process exits with status 143 instead of returning, as a plain Lightning run stops.

    Example:
        >>> Terminated("fit").code
        143
    """

    def __init__(self, call: object) -> None:
        super().__init__(SIGTERM_STATUS)
        call = getattr(call, "value", call)  # Lightning's TrainerFn is an enum of strings
        self.call = "evaluate" if call == "validate" else call  # the user's name of the call

    def announce(self) -> None:
        print(
            f"Stopped by SIGTERM during {self.call or 'a call'}; exiting with status "
            f"{SIGTERM_STATUS}.",
            file=sys.stderr,
        )


class Interrupted(CallbackException):
    """Why training ended after Ctrl-C (printed to standard error)."""

    to_stderr = True


@contextmanager
def announce_termination() -> Iterator[None]:
    """Says on standard error that SIGTERM ended the call, once its teardown is done."""
    try:
        yield
    except Terminated as e:
        e.announce()
        raise


class InterruptGuard:
    """While active, SIGINT raises KeyboardInterrupt at once, except between :meth:`begin` and
    :meth:`end` (an optimizer step), where it is held until the step is complete.

    With ``sigterm=True`` (the Fabric runner; the Trainer has its own handler), SIGTERM sets
    :attr:`terminated`, which the loop reads after every batch, as Lightning's loops read the
    Trainer's ``received_sigterm``.

    Restores the previous handlers on exit (Lightning sets SIGINT to "ignore" when it handles a
    KeyboardInterrupt). Inactive outside the main thread, where signals can't be set.
    """

    def __init__(self, sigterm: bool = False) -> None:
        self.sigterm = sigterm
        self.busy = False
        self.pending = False
        self.terminated = False
        self._previous: dict[int, Any] = {}
        self._active = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.busy:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def _handle_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.terminated = True

    def __enter__(self) -> InterruptGuard:
        self._active = threading.current_thread() is threading.main_thread()
        if self._active:
            handlers = {signal.SIGINT: self._handle}
            if self.sigterm:
                handlers[signal.SIGTERM] = self._handle_sigterm
            for signum, handler in handlers.items():
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, handler)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._active:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous = {}
            self._active = False
        self.busy = self.pending = False

    def begin(self) -> None:
        self.busy = True

    def end(self) -> None:
        self.busy = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
