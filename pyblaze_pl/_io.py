"""Atomic file writes: a crash or a full disk never leaves a half-written file behind.

Every file the library writes goes through :func:`atomic_write` (or :func:`atomic_write_all` for
files that belong together). The rules, also in docs/reliability.md:

- The content is written to a temporary file ``.<name>.XXXXXXXX.tmp`` next to the target
  (``XXXXXXXX``: 8 random characters), flushed to disk, then renamed onto the target. Readers see
  the old file or the new one, never a mix.
- A failed write removes its temporary file and leaves the target as it was. An ``OSError`` from
  the write (also one hidden inside ``torch.save``'s ``RuntimeError: ... unexpected pos``) is
  raised again as an ``OSError`` with the same errno whose message names the target and the
  cause, e.g. ``[Errno 28] Could not write 'runs/model.pt': No space left on device. ...``.
- A process killed while writing leaves its temporary file behind; the next write to the same
  target removes it. Only files named like our own temporary files for exactly that target
  name are removed, and only when they were last modified more than :data:`STALE_SECONDS` ago:
  a writer that is still running (another process saving to the same path) keeps writing to its
  file and so keeps it recent.
- Written files get the permissions of a plain ``open(path, "w")``: ``0o666`` minus the umask
  (``0o644`` under the usual umask ``022``).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from pyblaze_pl._signals import deferred_sigint

__all__ = [
    "STALE_SECONDS",
    "atomic_write",
    "atomic_write_all",
    "check_writable_folder",
    "listing",
    "remove_stale_temps_in",
    "require_file",
]

STALE_SECONDS = 60.0
"""Age (since the last modification) after which a left-over temporary file is removed."""

Writer = Callable[[IO[Any]], None]


def _umask_from_proc() -> int | None:
    """The process's umask from ``/proc/self/status`` (Linux 4.7+); None where unavailable.

    Unlike ``os.umask``, reading it does not change it, so it is safe while other threads run.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    # os.umask can only be read by setting it; done once, at import, for systems without /proc.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK_AT_IMPORT = _umask_from_proc()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_at_import()


def file_mode() -> int:
    """The permission bits of a newly created file: ``0o666`` minus the current umask."""
    umask = _umask_from_proc()
    return 0o666 & ~(_UMASK_AT_IMPORT if umask is None else umask)


def _remove_stale_temps(path: Path) -> None:
    """Removes temporary files of ``path`` left by killed writers (see the module docstring)."""
    _remove_matching(path.parent, re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.tmp"))


def remove_stale_temps_in(folder: str | os.PathLike, suffixes: Sequence[str]) -> list[Path]:
    """Removes the temporary files that killed writers of :func:`atomic_write` left in
    ``folder`` for targets whose names end with one of ``suffixes`` (``".ckpt"``, ``".pt"``), when
    they were last modified more than :data:`STALE_SECONDS` ago. Returns the removed files.

    :func:`atomic_write` removes those of its own target; a folder that receives a new name at
    every save (``epoch=3-step=40.ckpt``, ``model_epoch-3.pt``) needs this sweep, called by the
    writers of such folders before they save. Only names of the form
    ``.<name><suffix>.XXXXXXXX.tmp`` are touched; a writer still running keeps its file recent.

    Example:
        >>> remove_stale_temps_in("runs/ckpt", (".ckpt",))  # doctest: +SKIP
        [PosixPath('runs/ckpt/.epoch=3-step=40.ckpt.k2j4x9_a.tmp')]
    """
    ends = "|".join(re.escape(suffix) for suffix in suffixes)
    pattern = re.compile(rf"\..+(?:{ends})\.[a-z0-9_]{{8}}\.tmp")
    return _remove_matching(Path(folder).expanduser(), pattern)


def _remove_matching(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if (
                entry.is_file(follow_symlinks=False)
                and now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            ):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # renamed or removed meanwhile by its writer, or not ours to remove
            pass
    return removed


def _errno_of(error: BaseException) -> int | None:
    """The errno of the first OSError in ``error``'s cause/context chain (torch.save reports a
    failed write as ``RuntimeError: unexpected pos`` with the OSError as its context)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current.errno
        current = current.__cause__ or current.__context__
    return None


def _message(path: Path, code: int, replaced: Sequence[Path]) -> str:
    message = f"Could not write '{path}': {os.strerror(code)}."
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        message += f" Free space on the device that holds '{path.parent}' and save again."
    state = "was left as it was" if path.exists() else "was not created"
    message += f" '{path}' {state} and the temporary file was removed."
    if replaced:
        message += " Already replaced: " + ", ".join(f"'{p}'" for p in replaced) + "."
    return message


def atomic_write_all(files: Sequence[tuple[str | os.PathLike, Writer, bool]]) -> list[Path]:
    """Writes several files that belong together: each ``(path, write, binary)`` is written
    through ``write`` into a temporary file next to ``path``; only when every file has been
    written completely are they renamed onto their paths, in the given order.

    A failure while writing (a full disk, say) leaves every path as it was. A Ctrl-C during the
    renames takes effect after the last one. Only a crash (a killed process) between two renames
    can leave some files replaced and others not; readers of such pairs must check that they
    belong together. Parent directories are created.

    Raises:
        OSError: For a failed write, with the errno of the cause and a message that names the
            path and the cause (see the module docstring).

    Example:
        >>> atomic_write_all([("m.json", lambda f: f.write("{}"), False),
        ...                   ("m.pt", lambda f: f.write(b""), True)])  # doctest: +SKIP
        [PosixPath('m.json'), PosixPath('m.pt')]
    """
    targets = [Path(path).expanduser() for path, _, _ in files]
    temps: list[Path] = []
    replaced: list[Path] = []
    current = targets[0] if targets else Path()
    try:
        mode = file_mode()
        for target, (_, write, binary) in zip(targets, files, strict=True):
            current = target
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_temps(target)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            temps.append(Path(tmp))
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
                os.chmod(tmp, mode)  # mkstemp creates 0o600
                write(f)
                f.flush()
                os.fsync(f.fileno())
        with deferred_sigint():  # a Ctrl-C between two renames would leave a mixed set
            for target, tmp in zip(targets, temps, strict=True):
                current = target
                os.replace(tmp, target)
                replaced.append(target)
    except BaseException as error:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        code = _errno_of(error) if isinstance(error, Exception) else None
        if code is None:
            raise
        raise OSError(code, _message(current, code, replaced)) from error
    return targets


def atomic_write(path: str | os.PathLike, write: Writer, binary: bool) -> Path:
    """Writes a file through ``write`` into a temporary file next to ``path``, then renames it
    (see the module docstring for the rules). Parent directories are created.

    Raises:
        OSError: For a failed write; the message names ``path`` and the cause, e.g.
            ``[Errno 28] Could not write 'runs/h.json': No space left on device. ...``.

    Example:
        >>> atomic_write("runs/notes.txt", lambda f: f.write("hello"), binary=False)
        PosixPath('runs/notes.txt')
    """
    return atomic_write_all([(path, write, binary)])[0]


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Raises unless files can be created in ``folder`` or, where it does not exist yet, in the
    nearest existing folder above it (where it will be created). Called before training, so that
    a save folder that cannot be written fails at once, not at the end of the first epoch.

    Writability is tested by creating and removing an empty file (``.pyblaze_pl-write-check.*``):
    permission bits, ACLs, read-only mounts and root's rights all answer as they will for the
    real save. Returns ``folder`` as a Path.

    Args:
        folder: The folder files will be saved into.
        what: What the folder is, for the message: ``"ModelCheckpoint's dirpath"``.

    Raises:
        NotADirectoryError: If ``folder``, or a path above it, is a file.
        OSError: With the errno of the cause (``PermissionError`` for a folder without write
            permission, ``OSError`` with ``EROFS`` for a read-only filesystem); the message names
            the folder and the cause.

    Example:
        >>> check_writable_folder("runs/ckpt", "ModelCheckpoint's dirpath")
        PosixPath('runs/ckpt')
    """
    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "which is a file" if existing == folder else f"but '{existing}' above it is a file"
        raise NotADirectoryError(
            errno.ENOTDIR,
            f"Expected {what} to be a folder to save into. Received: '{folder}', {where}. "
            f"Choose a folder; nothing was trained.",
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".pyblaze_pl-write-check.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        code = e.errno or errno.EACCES
        created = "" if existing == folder else f" (it does not exist; '{existing}' would hold it)"
        raise OSError(
            code,
            f"Expected {what} to be a folder that can be written. Received: '{folder}'{created}, "
            f"where no file can be created: {os.strerror(code)}. Choose another folder or make "
            f"it writable; nothing was trained.",
        ) from None
    return folder


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Returns ``path`` as a Path if it is an existing file.

    Raises:
        FileNotFoundError: Naming ``path``, if nothing exists there.
        IsADirectoryError: Naming ``path`` and a few of its files, if it is a directory.

    Example:
        >>> require_file("runs", "a History JSON file")  # doctest: +SKIP
        Traceback (most recent call last):
        IsADirectoryError: Expected a History JSON file at 'runs'. Received: a directory (...)
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(
            f"Expected {what} at '{path}'. Received: a directory ({listing(path)}); pass the "
            f"path of a file."
        )
    if not path.is_file():
        raise FileNotFoundError(f"Expected {what} at '{path}', but no such file exists.")
    return path


def listing(directory: Path, count: int = 4) -> str:
    """A few words on what ``directory`` holds, for messages: ``it holds 3 entries: a, b, c``."""
    try:
        names = sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))
    except OSError:
        return "not readable"
    if not names:
        return "empty"
    shown = ", ".join(names[:count]) + (", ..." if len(names) > count else "")
    return f"it holds {len(names)} entries: {shown}"
