"""Ctrl-C during training: never in the middle of an optimizer step."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class InterruptGuard:
    """While active, SIGINT raises KeyboardInterrupt at once, except between :meth:`begin` and
    :meth:`end` (an optimizer step), where it is held until the step is complete.

    Restores the previous SIGINT handler on exit (Lightning sets SIGINT to "ignore" when it
    handles a KeyboardInterrupt). Inactive outside the main thread, where signals can't be set.
    """

    def __init__(self) -> None:
        self.busy = False
        self.pending = False
        self._previous: Any = None
        self._active = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.busy:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> InterruptGuard:
        self._active = threading.current_thread() is threading.main_thread()
        if self._active:
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._previous)
            self._active = False
        self.busy = self.pending = False

    def begin(self) -> None:
        self.busy = True

    def end(self) -> None:
        self.busy = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
