"""Checkpoints that are never half-written, and checkpoints to resume from that are checked first.

Lightning's ``TorchCheckpointIO`` writes through fsspec, which stages the file in the system's
temporary folder and then moves it: across filesystems (a data disk, NFS) the move is a copy, so a
kill or a full disk during the copy leaves a truncated ``.ckpt`` where the previous one was, and
staged files pile up in ``/tmp``. :func:`with_atomic_checkpoints` gives ``fit`` a ``CheckpointIO``
that writes a temporary file in the target folder, flushes and fsyncs it, then renames it over the
target (``os.replace``, atomic within a filesystem), unless the user chose a ``CheckpointIO``.
Temporary files that killed saves left in the folder are removed by the next save there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from pyblaze_pl._files import UnsafeFile, read_torch_file
from pyblaze_pl._io import atomic_write, check_writable_folder, remove_stale_temps_in
from pyblaze_pl._lightning import compat

# Strategies that save through their own machinery (or need their own CheckpointIO).
_OWN_SAVING = ("deepspeed", "xla", "tpu")


@functools.cache
def atomic_checkpoint_io_class(pl: ModuleType) -> type:
    """A ``TorchCheckpointIO`` of the namespace ``pl`` whose local writes are atomic.

    Example:
        >>> import pytorch_lightning as pl  # doctest: +SKIP
        >>> trainer = pl.Trainer(plugins=[atomic_checkpoint_io_class(pl)()])  # doctest: +SKIP
    """

    def save_checkpoint(
        self: Any, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote: fsspec's own way
            return pl.plugins.TorchCheckpointIO.save_checkpoint(
                self, checkpoint, path, storage_options
            )
        # ModelCheckpoint gives most files new names: also remove what killed saves of other
        # names left in the folder (atomic_write removes those of this name)
        remove_stale_temps_in(Path(path).expanduser().parent, (".ckpt",))
        atomic_write(path, lambda f: torch.save(checkpoint, f), binary=True)
        return None

    return type(
        "AtomicCheckpointIO",
        (pl.plugins.TorchCheckpointIO,),
        {"save_checkpoint": save_checkpoint, "__module__": __name__},
    )


def check_checkpoint_folders(pl: ModuleType, callbacks: Iterable[object]) -> None:
    """Before training: raises if the ``dirpath`` of a ``ModelCheckpoint`` among ``callbacks``
    cannot be written (see :func:`pyblaze_pl._io.check_writable_folder`), so that a wrong folder
    fails at once instead of at the first checkpoint, after an epoch of training.

    ``ModelCheckpoint`` objects without ``dirpath`` (Lightning chooses the folder from the logger
    or ``default_root_dir`` during ``fit``) and remote paths (``s3://``) are not checked.

    Raises:
        OSError: ``PermissionError``, ``NotADirectoryError`` or ``OSError`` (``EROFS``) naming the
            callback, the folder and the cause.

    Example:
        >>> check_checkpoint_folders(pl, [pl.callbacks.ModelCheckpoint("/etc/passwd/ckpt")])
        Traceback (most recent call last):
        NotADirectoryError: [Errno 20] Expected ModelCheckpoint's dirpath (Lightning callback 1) ...
    """
    for index, callback in enumerate(callbacks):
        if not isinstance(callback, pl.callbacks.ModelCheckpoint):
            continue
        dirpath = getattr(callback, "dirpath", None)
        if dirpath and "://" not in str(dirpath):
            what = f"{type(callback).__name__}'s dirpath (Lightning callback {index + 1})"
            check_writable_folder(dirpath, what)


def with_atomic_checkpoints(pl: ModuleType, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for ``pl.Trainer`` with the atomic ``CheckpointIO`` added to ``plugins``, unless
    the user set a ``CheckpointIO`` (as a plugin or in a strategy object) or a strategy that saves
    its own way (DeepSpeed, XLA)."""
    plugins = options.get("plugins")
    plugins = (
        list(plugins) if isinstance(plugins, (list, tuple)) else [plugins] * (plugins is not None)
    )
    if any(isinstance(p, pl.plugins.CheckpointIO) for p in plugins):
        return options
    strategy = options.get("strategy")
    name = strategy if isinstance(strategy, str) else type(strategy).__name__
    if any(s in name.lower() for s in _OWN_SAVING) or any(
        s in str(options.get("accelerator", "")).lower() for s in _OWN_SAVING
    ):
        return options
    own_io = strategy is not None and not isinstance(strategy, str)
    if own_io and compat.strategy_checkpoint_io(strategy) is not None:
        return options
    return {**options, "plugins": [*plugins, atomic_checkpoint_io_class(pl)()]}


def check_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """Returns the Lightning checkpoint at ``path``; raises a ValueError naming ``path`` and what
    it is if it is not one.

    The CRC-32 checksums of the file are verified (a truncated or corrupted file is refused, see
    :func:`pyblaze_pl._files.read_torch_file`), then it is read with ``weights_only=True``
    (tensors memory-mapped), so nothing in it runs. A Lightning checkpoint is a dict with
    ``'state_dict'`` and the Trainer's progress (``'loops'`` or ``'epoch'``).

    Example:
        >>> check_checkpoint("model.pt")  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: Expected ckpt_path to be a Lightning checkpoint ... a plain state_dict ...
    """
    path = Path(path)
    expected = (
        f"Expected ckpt_path to be a Lightning checkpoint (e.g. last.ckpt written by "
        f"ModelCheckpoint). Received: '{path}'"
    )
    try:
        content = read_torch_file(path, expected, mmap=True)
    except UnsafeFile as e:
        raise UnsafeCheckpoint(str(e)) from None
    if not isinstance(content, Mapping):
        raise ValueError(f"{expected}, which holds a {type(content).__name__}, not a checkpoint.")
    if "state_dict" in content and ("loops" in content or "epoch" in content):
        return content
    keys = list(content)
    shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
    if keys and all(isinstance(v, torch.Tensor) for v in content.values()):
        raise ValueError(
            f"{expected}, which holds a plain state_dict (weights only: {len(keys)} tensors such "
            f"as {shown}), as torch.save(model.state_dict(), ...) writes. Load it into the model "
            f"before fit instead: model.load_state_dict(torch.load(path, weights_only=True))."
        )
    raise ValueError(
        f"{expected}, which holds a dict without the keys of a Lightning checkpoint "
        f"('state_dict' and 'loops' or 'epoch'). Its keys: {shown or 'none'}."
    )


class UnsafeCheckpoint(UnsafeFile):
    """A ``ckpt_path`` whose pickle ``weights_only`` loading refuses (it could run code)."""
