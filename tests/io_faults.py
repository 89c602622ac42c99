"""Disk faults for tests of the library's file writes (imported by the test modules)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest


def fill_disk(monkeypatch: pytest.MonkeyPatch, names: Iterable[str] | None = None) -> None:
    """Makes the temporary files that ``atomic_write`` opens behave as on a full disk: their file
    descriptor is pointed at ``/dev/full``, so the kernel answers writes with ENOSPC as a real
    full disk does (``torch.save`` then fails the way it does on one).

    Args:
        monkeypatch: The test's monkeypatch fixture.
        names: Only temporary files of these target names (``"m.pt"``); every file when None.
    """
    if not (os.path.exists("/dev/full") and os.path.isdir("/proc/self/fd")):
        pytest.skip("needs /dev/full and /proc (Linux)")
    fdopen = os.fdopen
    names = None if names is None else tuple(names)

    def fdopen_on_a_full_disk(fd: int, *args, **kwargs):
        temp = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if names is None or any(temp.startswith(f".{name}.") for name in names):
            full = os.open("/dev/full", os.O_WRONLY)
            os.dup2(full, fd)
            os.close(full)
        return fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen_on_a_full_disk)
