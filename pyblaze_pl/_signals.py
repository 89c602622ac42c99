"""Ctrl-C that waits for a critical section: :func:`deferred_sigint`.

A ``KeyboardInterrupt`` raised in the middle of an import leaves the half-imported modules of a
package behind (Python removes only the module whose code was interrupted): later imports of the
package can then fail in ways that have nothing to do with the user's code. The library's lazy
imports (the Trainer stack on the first ``fit``, torchmetrics on the first metric) run inside
:func:`deferred_sigint`: a Ctrl-C that arrives meanwhile is delivered when the import is
complete, and the call then stops as a Ctrl-C does.

Plain Python; imports nothing of torch or Lightning.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["deferred_sigint"]


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Defers SIGINT (Ctrl-C) until the block has finished, then delivers it.

    In the main thread, SIGINT's handler is replaced for the duration of the block by one that
    only records the signal; on exit (also when the block raises) the previous handler is put
    back and, if a SIGINT arrived, the signal is raised again, so that the previous handler
    decides what it means: Python's default raises ``KeyboardInterrupt`` right there, a handler of
    the user's (or of a running ``fit``) does what it does for a Ctrl-C, ``SIG_IGN`` ignores it.
    Blocks nest. Outside the main thread, or when SIGINT is ignored, it does nothing (signals are
    only handled by the main thread).

    Example:
        >>> with deferred_sigint():
        ...     import json  # a Ctrl-C here takes effect after the import
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or previous is None:  # ignored, or set outside Python
        yield
        return
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, record)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)  # the previous handler runs now
