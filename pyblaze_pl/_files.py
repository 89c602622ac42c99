"""Reading files the library did not write itself: what a file is, and torch files that are checked
before they are trusted.

Every loader (``ckpt_path``, ``load_checkpoint_weights``, ``Configurable.load``, ``History.load``)
names the file and says what it is when it is not what was expected: a directory, an empty file,
a truncated or corrupted zip archive (the format ``torch.save`` writes), a pickle that could run
code, a text file, or bytes of no known format.

``torch.load`` does not check the CRC-32 checksums that torch's zip format stores for every entry
(it reads the bytes as they are, also with ``mmap=True``): a bit flipped on a disk or in a copy
loads as a wrong weight, silently. :func:`read_torch_file` verifies every checksum first
(:func:`zip_problem`; cost: one read of the file, measured in ``benchmarks/checksum_cost.py``),
then loads with ``weights_only=True``, so nothing in the file runs.

Plain Python and torch; no Lightning.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from pyblaze_pl._io import listing

__all__ = [
    "CorruptFile",
    "UnsafeFile",
    "describe",
    "read_json",
    "read_torch_file",
    "zip_problem",
]

_ZIP_ENTRY = b"PK\x03\x04"
_ZIP_EMPTY = b"PK\x05\x06"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # 30 bytes; name and extra lengths at the end
_CHUNK = 16 << 20  # read and checksummed per 16 MiB
_HEAD = 64


class CorruptFile(ValueError):
    """A file that is truncated, or whose content no longer matches its checksums."""


class UnsafeFile(pickle.UnpicklingError, ValueError):
    """A file whose pickle refers to objects that ``weights_only`` loading refuses: loading it
    could run code."""


def _head(path: Path, size: int = _HEAD) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _is_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _text(head: bytes) -> str | None:
    """``head`` as text if it looks like text (UTF-8 without control characters but whitespace)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # cut in the middle of a character at the end of head
        if e.start < len(head) - 3:
            return None
        text = head[: e.start].decode("utf-8")
    if not text or any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        return None
    return text


def describe(path: str | os.PathLike) -> str:
    """What the file at ``path`` is, in a few words, from its first bytes (and, for a zip
    archive, its checksums): for messages of loaders that did not get what they expected.

    Example:
        >>> describe("runs/model.json")  # doctest: +SKIP
        "a text file (it starts with '{\\n    \"hidden\": 8')"
    """
    path = Path(path)
    if path.is_dir():
        return f"a directory ({listing(path)})"
    if not path.exists():
        return "a path where no file exists"
    size = path.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    head = _head(path)
    if head.startswith((_ZIP_ENTRY, _ZIP_EMPTY)):
        problem = zip_problem(path)
        if problem:
            return problem
        return f"a zip archive of {size} bytes ({_zip_kind(path)})"
    if _is_pickle(head):
        return f"a pickle of {size} bytes (torch.save's legacy format or pickle.dump)"
    text = _text(head)
    if text is not None:
        shown = text[:32] + ("..." if len(text) > 32 or size > len(head) else "")
        return f"a text file of {size} bytes (it starts with {shown!r})"
    return (
        f"{size} bytes of no known format: not a zip archive (torch.save's format), a pickle or "
        f"text (it starts with {head[:8].hex(' ')})"
    )


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "unreadable"
    if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return "torch.save's format"
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"not torch.save's format: no data.pkl among its entries {shown or '(none)'}"


def zip_problem(path: str | os.PathLike) -> str | None:
    """Checks the zip archive at ``path`` (torch.save's format): its structure and the CRC-32
    checksum of every entry. Returns what is wrong with it, or None if nothing is.

    Costs one read of the whole file, in 16 MiB pieces checksummed by zlib (time per GB in
    docs/reliability.md, from ``benchmarks/checksum_cost.py``).

    Example:
        >>> torch.save({"w": torch.zeros(3)}, "w.pt")  # doctest: +SKIP
        >>> zip_problem("w.pt") is None  # doctest: +SKIP
        True
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        if _head(path, 4) == _ZIP_ENTRY and "not a zip file" in str(e):
            return (
                f"a truncated zip archive (torch.save's format) of {size} bytes: its end, the "
                f"directory of its entries, is missing; the file was cut short, e.g. by a full "
                f"disk, a killed copy or an unfinished download"
            )
        return f"a damaged zip archive of {size} bytes ({e})"
    except (ValueError, OSError, EOFError) as e:  # a damaged directory: bad offsets or names
        return f"a damaged zip archive of {size} bytes ({type(e).__name__}: {e})"
    # Read into one reused buffer rather than memory-mapped: a file truncated by another process
    # while it is read gives a short read here, where a memory map would kill us with SIGBUS.
    buffer = bytearray(min(_CHUNK, size))
    with archive, open(path, "rb", buffering=0) as raw:
        for info in archive.infolist():
            try:
                problem = _entry_problem(archive, raw, info, buffer)
            except (ValueError, OSError, struct.error) as e:
                problem = f"entry '{info.filename}' cannot be read ({type(e).__name__}: {e})"
            if problem:
                return (
                    f"a corrupted zip archive (torch.save's format) of {size} bytes: {problem}; "
                    f"its bytes changed after it was written (a disk, memory or transfer error), "
                    f"so its content cannot be trusted"
                )
    return None


def _entry_problem(
    archive: zipfile.ZipFile, raw: io.RawIOBase, info: zipfile.ZipInfo, buffer: bytearray
) -> str | None:
    """What is wrong with one entry: its local header, its place in the file, or its checksum."""
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size) or b""
    if len(header) < _LOCAL_HEADER.size or not header.startswith(_ZIP_ENTRY):
        return f"the header of entry '{info.filename}' at byte {info.header_offset} is damaged"
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    if raw.read(name_length) != info.orig_filename.encode("utf-8", "replace"):
        return f"the name of entry '{info.filename}' differs in its header"
    crc = 0
    if info.compress_type == zipfile.ZIP_STORED:  # what torch writes: checksum the bytes in place
        raw.seek(extra_length, os.SEEK_CUR)
        view, left = memoryview(buffer), info.compress_size
        while left:  # per chunk, so that a Ctrl-C is seen between chunks
            read = raw.readinto(view[: min(left, len(buffer))])
            if not read:
                return f"entry '{info.filename}' ends after the end of the file"
            crc = zlib.crc32(view[:read], crc)
            left -= read
    else:  # compressed by another tool: zipfile decompresses and checks
        try:
            with archive.open(info) as entry:
                while entry.read(_CHUNK):
                    pass
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
            return f"entry '{info.filename}' cannot be read ({e})"
        return None
    if crc != info.CRC:
        return (
            f"the CRC-32 checksum of entry '{info.filename}' ({info.compress_size} bytes) is "
            f"{crc:08x}, where the archive records {info.CRC:08x}"
        )
    return None


def _pickle_globals(data: bytes) -> list[str]:
    """The objects (``module.name``) the pickle(s) at the start of ``data`` import, read with
    :mod:`pickletools` (which runs nothing); torch's own classes and functions left out."""
    found: list[str] = []
    strings: list[str] = []
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):  # torch's legacy format: several pickles in a row
            for opcode, arg, _ in pickletools.genops(stream):
                if isinstance(arg, str):
                    strings.append(arg)
                if opcode.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # not a pickle (any more): raw tensor bytes follow in the legacy format
        pass
    return list(dict.fromkeys(g for g in found if not g.startswith(_SAFE_PREFIXES)))


_SAFE_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set", "_codecs.encode")


def _refused(path: Path, is_zip: bool, expected: str, size: int, error: str) -> ValueError:
    """The error for a file torch's ``weights_only`` unpickler refused (``error``: its message;
    only the name of the refused object is taken from it)."""
    if is_zip:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            data = archive.read(name) if name else b""
    else:
        with open(path, "rb") as f:
            data = f.read(16 << 20)
    named = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", error)
    imports = list(dict.fromkeys([*named, *_pickle_globals(data)]))
    if imports:
        shown = ", ".join(imports[:3]) + (", ..." if len(imports) > 3 else "")
        return UnsafeFile(
            f"{expected}, which holds a pickle that loading with weights_only=True refuses: a "
            f"pickle that could run code (it imports {shown}), not only tensors, numbers, "
            f"strings and containers. Nothing in it was run."
        )
    return CorruptFile(
        f"{expected}, which is {'a zip archive' if is_zip else 'a pickle'} of {size} bytes whose "
        f"pickle torch cannot read (a plain pickle.dump file, or a damaged one); it was not "
        f"written by torch.save."
    )


def read_json(path: Path, expected: str) -> Any:
    """Parses the JSON file at ``path``.

    Args:
        path: An existing file.
        expected: The start of every message, naming the file and what it should hold:
            ``"Expected 'h.json' to hold a History."``

    Raises:
        ValueError: For a file that is empty, binary (a torch file, say), truncated JSON, not
            JSON, or nested too deeply; the message says which.

    Example:
        >>> read_json(Path("h.json"), "Expected 'h.json' to hold a History.")  # doctest: +SKIP
        {'duration': 1.5, 'metrics': [...]}
    """
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{expected} Received: an empty file (0 bytes).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{expected} Received: {describe(path)}, not JSON text.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # nothing but the end after the error, or a string that runs to the end: cut short
        if text.strip() and (
            not text[e.pos :].strip() or e.msg == "Unterminated string starting at"
        ):
            raise ValueError(
                f"{expected} Received: JSON text that ends early, after {len(data)} bytes "
                f"({e.msg}): the file is truncated."
            ) from None
        raise ValueError(f"{expected} Received a file that is not valid JSON ({e}).") from None
    except RecursionError:
        raise ValueError(f"{expected} Received JSON nested too deeply to read.") from None


def read_torch_file(path: Path, expected: str, *, mmap: bool = False) -> Any:
    """Loads a file written by ``torch.save`` after checking it, with ``weights_only=True``.

    Args:
        path: An existing file (see :func:`require_file`).
        expected: The start of every message, which names the file: ``"Expected ckpt_path to be
            a Lightning checkpoint. Received: 'x.ckpt'"``; what the file is follows.
        mmap: Memory-map the tensors (zip archives only).

    Raises:
        CorruptFile: An empty file, a truncated zip archive or pickle, or a zip archive whose
            checksums do not match its content.
        UnsafeFile: A pickle that imports objects ``weights_only`` loading refuses (it could run
            code); nothing of it runs.
        ValueError: Any other file torch cannot read (text, bytes of no known format).

    Example:
        >>> state = read_torch_file(Path("w.pt"), "Expected a weights file. Received: 'w.pt'")
    """
    size = path.stat().st_size
    if size == 0:
        raise CorruptFile(
            f"{expected}, which is an empty file (0 bytes): a save that wrote nothing, e.g. one "
            f"killed as it began."
        )
    head = _head(path)
    is_zip = head.startswith((_ZIP_ENTRY, _ZIP_EMPTY))
    if is_zip:
        problem = zip_problem(path)
        if problem:
            raise CorruptFile(f"{expected}, which is {problem}.")
    elif not _is_pickle(head):
        raise ValueError(f"{expected}, which is {describe(path)}, not a file torch.save writes.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        raise _refused(path, is_zip, expected, size, str(e)) from None
    except EOFError:
        raise CorruptFile(
            f"{expected}, which is {'a zip archive' if is_zip else 'a pickle'} of {size} bytes "
            f"that ends early: the file is truncated."
        ) from None
    except Exception as e:  # torch raises many types for malformed files
        raise CorruptFile(
            f"{expected}, which torch cannot read ({describe(path)}; {type(e).__name__}: "
            f"{_first_line(e)})."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
