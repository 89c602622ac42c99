"""Atomic file writes: a crash never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], binary: bool) -> Path:
    """Writes a file through ``write`` into a temporary file next to ``path``, then renames it.

    Parent directories are created. On any error the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Returns ``path`` as a Path, raising FileNotFoundError that names it if it does not exist."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Expected {what} at '{path}', but no such file exists.")
    return path
