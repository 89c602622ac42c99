"""Atomic writes (pyblaze_pl._io): full-disk messages, temporary files left by a killed process,
permissions of written files."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from io_faults import fill_disk

from pyblaze_pl import _io
from pyblaze_pl._io import atomic_write, atomic_write_all


def write_text(text: str):
    return lambda f: f.write(text)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# a full disk: the message names the file and the cause, nothing is half-written


@pytest.mark.parametrize("writer", ["json", "torch"])
def test_a_full_disk_names_the_file_and_the_cause(tmp_path, monkeypatch, writer):
    path = tmp_path / "out" / "file"
    atomic_write(path, write_text("old"), binary=False)
    fill_disk(monkeypatch)
    if writer == "json":
        write, binary = (lambda f: json.dump({"a": list(range(100))}, f)), False
    else:  # torch.save reports it as "RuntimeError: ... unexpected pos 704 vs 598"
        write, binary = (lambda f: torch.save({"w": torch.zeros(1000)}, f)), True
    with pytest.raises(OSError) as info:
        atomic_write(path, write, binary=binary)
    error = info.value
    assert error.errno == errno.ENOSPC
    assert str(error).startswith(
        f"[Errno 28] Could not write '{path}': No space left on device. Free space on the "
        f"device that holds '{path.parent}' and save again. '{path}' was left as it was"
    )
    assert error.__cause__ is not None  # the original error is kept
    monkeypatch.undo()
    assert path.read_text() == "old" and leftovers(path.parent) == []


def test_a_failed_first_save_says_the_file_was_not_created(tmp_path, monkeypatch):
    path = tmp_path / "new.json"
    fill_disk(monkeypatch)
    with pytest.raises(OSError, match=r"'[^']*new\.json' was not created and the temporary"):
        atomic_write(path, lambda f: json.dump({"a": list(range(100))}, f), binary=False)
    monkeypatch.undo()
    assert not path.exists() and leftovers(tmp_path) == []


def test_other_os_errors_keep_their_type_and_name_the_file(tmp_path, monkeypatch):
    def refuse(*args):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match=r"Could not write '.*x\.json': Permission denied"):
        atomic_write(tmp_path / "x.json", write_text("{}"), binary=False)
    assert list(tmp_path.iterdir()) == []


def test_errors_that_are_not_about_the_disk_pass_unchanged(tmp_path):
    def broken(f):
        f.write("half")
        raise ValueError("not serializable")

    def interrupted(f):
        f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(ValueError, match=r"^not serializable$"):
        atomic_write(tmp_path / "x.json", broken, binary=False)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.json", interrupted, binary=False)
    assert list(tmp_path.iterdir()) == []


def test_files_written_together_replace_nothing_when_one_fails(tmp_path, monkeypatch):
    first, second = tmp_path / "a.json", tmp_path / "b.pt"
    atomic_write_all([(first, write_text("old a"), False), (second, write_text("old b"), False)])
    fill_disk(monkeypatch, names=["b.pt"])  # the second file does not fit
    with pytest.raises(OSError, match=r"Could not write '.*b\.pt': No space left on device"):
        atomic_write_all(
            [(first, write_text("new a"), False), (second, write_text("new b"), False)]
        )
    monkeypatch.undo()
    assert first.read_text() == "old a" and second.read_text() == "old b"
    assert leftovers(tmp_path) == []


# temporary files left by a killed process

KILLED_WRITER = """
import os, signal, sys
from pyblaze_pl._io import atomic_write

def write_then_die(f):
    f.write("partial")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(sys.argv[1], write_then_die, binary=False)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "history.json"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], env=env, check=False)
    assert run.returncode == -9
    (left,) = leftovers(tmp_path)
    assert left.startswith(".history.json.") and (tmp_path / left).read_text() == "partial"

    atomic_write(target, write_text("1"), binary=False)  # the kill was just now: kept
    assert leftovers(tmp_path) == [left]
    old = time.time() - _io.STALE_SECONDS - 1
    os.utime(tmp_path / left, (old, old))
    atomic_write(target, write_text("2"), binary=False)
    assert leftovers(tmp_path) == [] and target.read_text() == "2"


def test_only_stale_temporary_files_of_the_same_target_are_removed(tmp_path):
    names = [
        ".model.pt.abc_1234.tmp",  # ours, old: removed
        ".model.pt.zzzzzzzz.tmp",  # ours, recent (a writer still running): kept
        ".model.pt.x.abcd1234.tmp",  # the temporary file of another target, 'model.pt.x'
        ".model.abcd1234.tmp",  # of 'model'
        ".model.pt.abc.tmp",  # not our pattern
        "model.pt.abcd1234.tmp",  # not hidden: not ours
    ]
    old = time.time() - _io.STALE_SECONDS - 1
    for name in names:
        (tmp_path / name).write_text("x")
        if name != ".model.pt.zzzzzzzz.tmp":
            os.utime(tmp_path / name, (old, old))
    atomic_write(tmp_path / "model.pt", write_text("new"), binary=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.pt", *names[1:]])


# permissions


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "x.json", write_text("{}"), binary=False)
        with open(tmp_path / "plain.json", "w") as f:  # what a plain write gives
            f.write("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == mode


def test_umask_without_proc_falls_back_to_the_value_read_at_import(monkeypatch):
    monkeypatch.setattr(_io, "_umask_from_proc", lambda: None)
    monkeypatch.setattr(_io, "_UMASK_AT_IMPORT", 0o027)
    assert _io.file_mode() == 0o640
