"""Checkpoints that are never half-written, and checkpoints to resume from that are checked first.

Lightning's ``TorchCheckpointIO`` writes through fsspec, which stages the file in the system's
temporary folder and then moves it: across filesystems (a data disk, NFS) the move is a copy, so a
kill or a full disk during the copy leaves a truncated ``.ckpt`` where the previous one was, and
staged files pile up in ``/tmp``. :func:`with_atomic_checkpoints` gives ``fit`` a ``CheckpointIO``
that writes a temporary file in the target folder, flushes and fsyncs it, then renames it over the
target (``os.replace``, atomic within a filesystem), unless the user chose a ``CheckpointIO``.
"""

from __future__ import annotations

import functools
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from pyblaze_pl._io import atomic_write
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
        atomic_write(path, lambda f: torch.save(checkpoint, f), binary=True)
        return None

    return type(
        "AtomicCheckpointIO",
        (pl.plugins.TorchCheckpointIO,),
        {"save_checkpoint": save_checkpoint, "__module__": __name__},
    )


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

    The file is read with ``weights_only=True`` (tensors memory-mapped where the format allows), so
    nothing in it runs. A Lightning checkpoint is a dict with ``'state_dict'`` and the Trainer's
    progress (``'loops'`` or ``'epoch'``).

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
        mmap = zipfile.is_zipfile(path)  # the format torch.save writes; other files load whole
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e) and "Weights only" not in str(e):
            raise ValueError(
                f"{expected}, which is not a torch file or is truncated "
                f"({path.stat().st_size} bytes; {_first_line(e)})."
            ) from None
        found = [line.strip() for line in str(e).splitlines() if "Unsupported global" in line]
        raise UnsafeCheckpoint(
            f"{expected}, which holds objects that loading with weights_only=True refuses: a "
            f"pickle that could run code, not a checkpoint"
            + (f" ({found[0].removeprefix('WeightsUnpickler error: ')})." if found else ".")
        ) from None
    except Exception as e:  # zip, EOF and format errors
        raise ValueError(
            f"{expected}, which is not a torch file or is truncated "
            f"({path.stat().st_size} bytes; {type(e).__name__}: {_first_line(e)})."
        ) from None
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


class UnsafeCheckpoint(pickle.UnpicklingError, ValueError):
    """A ``ckpt_path`` whose pickle ``weights_only`` loading refuses (it could run code)."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
