"""Model architecture as data: :class:`Config` (typed fields) and :class:`Configurable` (a model
built from a config, saved as ``<path>.json`` + ``<path>.pt`` and rebuilt by ``load``).

Follows PyBlaze v1's ``pyblaze.nn.Config`` / ``pyblaze.nn.Configurable``, with stricter checks:
loading never runs pickled code, weights files are verified against their checksums, and every
write is atomic. :class:`Config` lives in :mod:`pyblaze_pl.nn._config`, the weights file in
:mod:`pyblaze_pl.nn._weights`; this module is their public home.
"""

from __future__ import annotations

import copy
import os
import reprlib
import warnings
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from pyblaze_pl._io import atomic_write_all, require_file
from pyblaze_pl.nn._config import Config, _fields
from pyblaze_pl.nn._weights import (
    base_path,
    config_mismatch,
    cpu_state,
    load_weights,
    save_weights,
    with_suffix,
)

__all__ = ["Config", "Configurable", "load_weights", "save_weights"]

_M = TypeVar("_M", bound="Configurable")
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


class Configurable:
    """Mixin that builds a model from a :class:`Config` and saves/loads it, as PyBlaze v1.

    Set ``__config__`` to the config class and list ``Configurable`` before ``nn.Module`` in the
    bases. The model accepts one config instance or the config's fields as keywords (the model
    keeps its own copy of the config). Config fields can be read as attributes of the model
    (``self.hidden``); attributes of the model itself (parameters, submodules, methods) take
    precedence, and ``self.config.<field>`` always works.

    Example:
        >>> class ModelConfig(Config):
        ...     hidden: int = 64
        >>> class Model(Configurable, nn.Module):
        ...     __config__ = ModelConfig
        ...     def __init__(self, *args, **kwargs):
        ...         super().__init__(*args, **kwargs)
        ...         self.fc = nn.Linear(10, self.hidden)
        >>> model = Model(hidden=8)
        >>> model.num_parameters
        88
        >>> model.save("runs/model")  # doctest: +SKIP
        >>> model = Model.load("runs/model")  # doctest: +SKIP
    """

    __config__: ClassVar[type[Config]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        if nn.Module in mro and mro.index(nn.Module) < mro.index(Configurable):
            bases = ", ".join(b.__name__ for b in cls.__bases__)
            raise TypeError(
                f"Expected Configurable before nn.Module in the bases of {cls.__name__}, e.g. "
                f"`class {cls.__name__}(xnn.Configurable, nn.Module)`. Received: ({bases})."
            )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = self._build_config(args, kwargs)  # validated before anything is built
        super().__init__()
        self._config = config

    @classmethod
    def _config_class(cls) -> type[Config]:
        config_class = getattr(cls, "__config__", None)
        if not (isinstance(config_class, type) and issubclass(config_class, Config)):
            raise TypeError(
                f"Expected {cls.__name__}.__config__ to be a Config subclass, e.g. "
                f"`__config__ = ModelConfig`. Received: {config_class!r}."
            )
        return config_class

    def _build_config(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Config:
        config_class = self._config_class()
        if not args:
            return config_class(**kwargs)
        if len(args) > 1 or kwargs:
            raise TypeError(
                f"Expected one {config_class.__name__} or its fields as keywords. Received: "
                f"{len(args)} positional argument(s) and keywords {sorted(kwargs)}."
            )
        if not isinstance(args[0], config_class):
            raise TypeError(
                f"Expected a {config_class.__name__} for {type(self).__name__}. "
                f"Received: {_repr.repr(args[0])} ({type(args[0]).__name__})."
            )
        return copy.copy(args[0])

    @property
    def config(self) -> Config:
        """The model's config."""
        return self.__dict__["_config"]

    @property
    def num_parameters(self) -> int:
        """The number of parameters (elements) of the model."""
        return sum(p.numel() for p in self.parameters())  # type: ignore[attr-defined]

    @property
    def num_trainable_parameters(self) -> int:
        """The number of parameters (elements) that require gradients."""
        params = self.parameters()  # type: ignore[attr-defined]
        return sum(p.numel() for p in params if p.requires_grad)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the config to ``<path>.json`` and the weights (on the CPU) to ``<path>.pt``.
        A trailing ``.json``/``.pt`` in ``path`` is ignored.

        Both files are written to temporary files first and replace the old pair only when both
        are complete, so a failed save (a full disk, say) leaves the old pair as it was. The
        weights file also records the config it was saved with (in the state dict's
        ``_metadata``, which ``load_state_dict`` ignores), so that :meth:`load` can tell a pair
        whose save was killed between the two renames.

        Raises:
            OSError: If a file could not be written; the message names it and the cause.

        Example:
            >>> model.save("runs/model")  # runs/model.json + runs/model.pt  # doctest: +SKIP
        """
        base = base_path(path)
        config_json = self.config._json()
        state = cpu_state(self, config_json)  # type: ignore[arg-type]
        atomic_write_all(
            [
                (with_suffix(base, ".pt"), lambda f: torch.save(state, f), True),
                (with_suffix(base, ".json"), lambda f: f.write(config_json), False),
            ]
        )

    @classmethod
    def load(cls: type[_M], path: str | os.PathLike) -> _M:
        """Rebuilds a model written by :meth:`save`: validates ``<path>.json``, builds the model
        from it, then loads ``<path>.pt`` with ``weights_only=True`` onto the CPU.

        Files written by PyBlaze v1 load too.

        Raises:
            FileNotFoundError: If either file does not exist.
            ValueError: If the config is invalid, or the weights file is unreadable or does not
                fit the architecture, or the two files were not saved together; the message
                names the files.

        Example:
            >>> model = Model.load("runs/model")  # doctest: +SKIP
        """
        base = base_path(path)
        config_path = require_file(with_suffix(base, ".json"), f"the config of a {cls.__name__}")
        weights_path = require_file(with_suffix(base, ".pt"), f"the weights of a {cls.__name__}")
        config = cls._config_class().load(config_path)
        model = cls(config)
        state = load_weights(weights_path)
        mismatch = config_mismatch(state, config, weights_path, config_path)
        try:
            model.load_state_dict(state)  # type: ignore[attr-defined]
        except RuntimeError as e:
            if mismatch:
                raise ValueError(
                    f"Expected '{weights_path}' and '{config_path}' to be saved together. "
                    f"Received a mixed pair: {mismatch}. A save that was killed between "
                    f"replacing the two files, or an edited config file, leaves such a pair; "
                    f"save the model again."
                ) from e
            raise ValueError(
                f"Expected the weights in '{weights_path}' to fit the {cls.__name__} built from "
                f"'{config_path}'. {e}"
            ) from e
        if mismatch:
            warnings.warn(
                f"'{weights_path}' was saved with another config than '{config_path}' holds "
                f"({mismatch}); the weights fit, so the model was loaded with the config file's "
                f"values. Save the model again to make the pair agree.",
                UserWarning,
                stacklevel=2,
            )
        return model

    def __getattr__(self, name: str) -> Any:
        parent = getattr(super(), "__getattr__", None)
        if parent is not None:
            try:
                return parent(name)
            except AttributeError:
                pass
        config = self.__dict__.get("_config")
        if config is None or name.startswith("__"):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        try:  # as PyBlaze v1: fields, properties and methods of the config
            return getattr(config, name)
        except AttributeError:
            fields = ", ".join(_fields(type(config))) or "(none)"
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '{name}', nor has its config "
                f"{type(config).__name__} (fields: {fields})."
            ) from None
