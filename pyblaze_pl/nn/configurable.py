"""Model architecture as data: :class:`Config` (typed fields) and :class:`Configurable` (a model
built from a config, saved as ``<path>.json`` + ``<path>.pt`` and rebuilt by ``load``).

Follows PyBlaze v1's ``pyblaze.nn.Config`` / ``pyblaze.nn.Configurable``, with stricter checks:
loading never runs pickled code and every write is atomic.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from pyblaze_pl._files import read_json
from pyblaze_pl._io import atomic_write, atomic_write_all, require_file

__all__ = ["Config", "Configurable", "load_weights", "save_weights"]

from pyblaze_pl.nn._config_types import (
    _check,
    _fields,
    _json_path,
    _repr,
    _type_name,
)
from pyblaze_pl.nn._weights import (
    _base_path,
    _config_mismatch,
    _cpu_state,
    _with_suffix,
    load_weights,
    save_weights,
)

_C = TypeVar("_C", bound="Config")
_M = TypeVar("_M", bound="Configurable")


class Config:
    """Typed configuration of a model, declared by annotations, as PyBlaze v1's ``Config``.

    Every annotated attribute of the class (and of its Config base classes) is a field; a field
    without a default is required. Constructing a config checks that no unknown field is given,
    that every required field is, and that every value matches its annotation, then calls
    :meth:`is_valid`. Assigning a field later checks its type again.

    Supported annotations: ``int`` (not ``bool``), ``float`` (an ``int`` is accepted and stored
    as ``float``), ``bool``, ``str``, ``list``/``tuple``/``dict`` and their generics
    (``list[int]``, ``tuple[int, int]``, ``dict[str, float]``: elements are checked),
    ``Optional[X]``/``X | None``/``Union``, ``Literal[...]``, ``Any`` and any class (checked with
    ``isinstance``). String annotations (``from __future__ import annotations``) are resolved with
    :func:`typing.get_type_hints`. Mutable defaults are copied for each config.

    Raises:
        ValueError: For an unknown or a missing field, or when :meth:`is_valid` returns False.
        TypeError: For a value that does not match its annotation.

    Example:
        >>> class ModelConfig(Config):
        ...     hidden: int = 64
        ...     dropout: float = 0.0
        ...     def is_valid(self):
        ...         return self.hidden > 0
        >>> ModelConfig(dropout=0)
        ModelConfig(hidden=64, dropout=0.0)
        >>> ModelConfig(hidden="64")
        Traceback (most recent call last):
        ...
        TypeError: Expected ModelConfig.hidden to be int. Received: '64' (str).
    """

    def __init__(self, **kwargs: Any) -> None:
        self._assign(kwargs, from_json=False)

    def _assign(self, values: Mapping[str, Any], from_json: bool) -> None:
        cls = type(self)
        fields = _fields(cls)
        for name in values:
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"Unknown field {name!r} for {cls.__name__}.{hint} "
                    f"Valid fields: {', '.join(fields) or '(none)'}."
                )
        missing = [n for n in fields if n not in values and not hasattr(cls, n)]
        if missing:
            raise ValueError(
                f"Missing required field(s) for {cls.__name__}: "
                + ", ".join(f"{n} ({_type_name(fields[n])})" for n in missing)
                + "."
            )
        for name, hint in fields.items():
            if name in values:
                value = values[name]
            else:
                value = getattr(cls, name)
                if isinstance(value, (list, dict, set)):
                    value = copy.deepcopy(value)
            object.__setattr__(self, name, _check(cls, name, value, hint, from_json))
        valid = self.is_valid()
        if not valid:
            raise ValueError(f"Invalid {cls.__name__}: is_valid() returned {valid!r} for {self!r}.")

    def is_valid(self) -> bool:
        """Extra validation of the field values; override it. The default accepts all values."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """The fields and their values, in declaration order (base classes first)."""
        return {name: getattr(self, name) for name in _fields(type(self))}

    @property
    def _params(self) -> dict[str, Any]:
        """PyBlaze v1's name for the field values: :meth:`to_dict` (a new dict on every access;
        changing it does not change the config)."""
        return self.to_dict()

    def _json(self) -> str:
        """The JSON text :meth:`save` writes; TypeError naming the field that is not JSON."""
        content = self.to_dict()
        for name, value in content.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"Expected {type(self).__name__}.{name} to be JSON-serializable to save the "
                    f"config. Received: {_repr.repr(value)} ({type(value).__name__})."
                ) from None
        return json.dumps(content, indent=4, sort_keys=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the config as a JSON object to ``path`` (``.json`` is appended unless given),
        atomically. Returns the path written.

        Raises:
            TypeError: If a value cannot be written as JSON (nothing is written then).

        Example:
            >>> ModelConfig(hidden=32).save("runs/model")  # doctest: +SKIP
            PosixPath('runs/model.json')
        """
        text = self._json()
        return atomic_write(_json_path(path), lambda f: f.write(text), binary=False)

    @classmethod
    def load(cls: type[_C], path: str | os.PathLike) -> _C:
        """Reads a config written by :meth:`save` (or by PyBlaze v1) and validates it.

        Raises:
            FileNotFoundError: If the file does not exist (``IsADirectoryError`` for a directory).
            ValueError: If it is not a JSON object of valid field values; the message names it
                and says what it is (binary, truncated JSON, ...).

        Example:
            >>> config = ModelConfig.load("runs/model")  # doctest: +SKIP
        """
        path = require_file(_json_path(path), f"a {cls.__name__} JSON file")
        content = read_json(path, f"Expected '{path}' to hold a {cls.__name__} as a JSON object.")
        if not isinstance(content, dict):
            raise ValueError(
                f"Expected '{path}' to hold a {cls.__name__} as a JSON object. "
                f"Received: a JSON {type(content).__name__}."
            )
        config = cls.__new__(cls)
        try:
            config._assign(content, from_json=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Invalid {cls.__name__} in '{path}': {e}") from e
        return config

    def __setattr__(self, name: str, value: Any) -> None:
        fields = _fields(type(self))
        if name in fields:
            value = _check(type(self), name, value, fields[name])
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({values})"


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
        base = _base_path(path)
        config_json = self.config._json()
        state = _cpu_state(self, config_json)  # type: ignore[arg-type]
        atomic_write_all(
            [
                (_with_suffix(base, ".pt"), lambda f: torch.save(state, f), True),
                (_with_suffix(base, ".json"), lambda f: f.write(config_json), False),
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
        base = _base_path(path)
        config_path = require_file(_with_suffix(base, ".json"), f"the config of a {cls.__name__}")
        weights_path = require_file(_with_suffix(base, ".pt"), f"the weights of a {cls.__name__}")
        config = cls._config_class().load(config_path)
        model = cls(config)
        state = load_weights(weights_path)
        mismatch = _config_mismatch(state, config, weights_path, config_path)
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
