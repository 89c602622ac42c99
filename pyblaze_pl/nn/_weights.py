"""Weights files of Configurable models: written atomically with the config they belong to,
read with ``weights_only=True``."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pyblaze_pl._files import read_torch_file
from pyblaze_pl._io import atomic_write, require_file
from pyblaze_pl.nn._config_types import _repr

if TYPE_CHECKING:
    from pyblaze_pl.nn.configurable import Config


def _config_mismatch(
    state: Mapping[str, Any], config: Config, weights_path: Path, config_path: Path
) -> str:
    """How the config recorded in a weights file differs from ``config``; '' if it does not or
    the file records none (written by :func:`save_weights`, PyBlaze v1 or ``torch.save``)."""
    metadata = getattr(state, "_metadata", None) or {}
    recorded = metadata.get("", {}).get(_CONFIG_KEY) if isinstance(metadata, Mapping) else None
    if not isinstance(recorded, str):
        return ""
    try:
        saved = json.loads(recorded)
    except json.JSONDecodeError:
        return ""
    current = json.loads(config._json())
    if not isinstance(saved, dict) or saved == current:
        return ""
    differences = [
        f"{name}={_repr.repr(saved.get(name, '<missing>'))} in '{weights_path.name}' but "
        f"{_repr.repr(current.get(name, '<missing>'))} in '{config_path.name}'"
        for name in sorted(set(saved) | set(current))
        if saved.get(name, ...) != current.get(name, ...)
    ]
    return "; ".join(differences)


def _base_path(path: str | os.PathLike) -> Path:
    """``path`` without a trailing ``.json`` or ``.pt``: the stem shared by both files."""
    path = Path(path).expanduser()
    return path.with_suffix("") if path.suffix in (".json", ".pt") else path


def _with_suffix(base: Path, suffix: str) -> Path:
    return base.with_name(base.name + suffix)


_CONFIG_KEY = "pyblaze_pl.config"  # key in the root entry of a state dict's _metadata


def _cpu_state(module: nn.Module, config_json: str | None = None) -> OrderedDict[str, Any]:
    """``module``'s state dict moved to the CPU, keeping PyTorch's ``_metadata`` (copied). With
    ``config_json``, the root entry of ``_metadata`` also records the config saved with it."""
    state = module.state_dict()
    cpu_state = OrderedDict((k, v.detach().cpu()) for k, v in state.items())
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        metadata = OrderedDict((k, dict(v)) for k, v in metadata.items())
        if config_json is not None:
            metadata.setdefault("", {})[_CONFIG_KEY] = config_json
    cpu_state._metadata = metadata  # type: ignore[attr-defined]
    return cpu_state


def save_weights(module: nn.Module, path: str | os.PathLike) -> Path:
    """Writes ``module``'s state dict, moved to the CPU, to ``path`` atomically.

    Example:
        >>> save_weights(model, "runs/model.pt")  # doctest: +SKIP
    """
    cpu_state = _cpu_state(module)
    return atomic_write(path, lambda f: torch.save(cpu_state, f), binary=True)


def load_weights(path: str | os.PathLike) -> Mapping[str, Any]:
    """Reads a state dict written by :func:`save_weights` onto the CPU, after verifying the file's
    CRC-32 checksums, without running pickled code (``torch.load(..., weights_only=True)``).

    Raises:
        FileNotFoundError: If ``path`` does not exist (``IsADirectoryError`` for a directory).
        ValueError: If the file is not a state dict of tensors, or is truncated or corrupted; the
            message names it and says what it is.

    Example:
        >>> model.load_state_dict(load_weights("runs/model.pt"))  # doctest: +SKIP
    """
    path = require_file(path, "a weights file (.pt)")
    expected = f"Expected a state dict of tensors written by torch.save. Received: '{path}'"
    state = read_torch_file(path, expected)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"{expected}, which holds a {type(state).__name__}.")
    return state
