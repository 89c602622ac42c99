"""Model architecture as data: :class:`Config` (typed fields) and :class:`Configurable` (a model
built from a config, saved as ``<path>.json`` + ``<path>.pt`` and rebuilt by ``load``).

Follows PyBlaze v1's ``pyblaze.nn.Config`` / ``pyblaze.nn.Configurable``, with stricter checks:
loading never runs pickled code and every write is atomic.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import json
import os
import pickle
import reprlib
import sys
import types
import typing
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

import torch
from torch import nn

from pyblaze_pl._io import atomic_write, atomic_write_all, require_file

__all__ = ["Config", "Configurable", "load_weights", "save_weights"]

_C = TypeVar("_C", bound="Config")
_M = TypeVar("_M", bound="Configurable")
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


class _Mismatch(Exception):
    """A value does not match an annotation (internal; turned into a TypeError naming the field)."""


def _type_name(hint: Any) -> str:
    """A readable name for an annotation: ``int``, ``list[int]``, ``int | None``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "None"
    if hint is Any:
        return "Any"
    if isinstance(hint, tuple):  # PyBlaze v1 style: a tuple of types, as for isinstance
        return " | ".join(_type_name(a) for a in hint)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{_type_name(origin)}[{inner}]" if args else _type_name(origin)
    return getattr(hint, "__qualname__", None) or repr(hint)


def _coerce(value: Any, hint: Any, lenient: bool, from_json: bool) -> Any:
    """Returns ``value`` if it matches ``hint`` (converted where allowed), else raises _Mismatch.

    ``lenient`` allows an int for a float (returned as float); ``from_json`` also allows a JSON
    list for a tuple (returned as tuple).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if isinstance(hint, tuple):  # PyBlaze v1 style: a tuple of types, as for isinstance
        origin, args = Union, hint
    if origin in (Union, types.UnionType):
        passes = (False, True) if lenient else (False,)  # an exact match wins over a conversion
        for lenient_pass in passes:
            for arm in args:
                try:
                    return _coerce(value, arm, lenient_pass, from_json)
                except _Mismatch:
                    pass
        raise _Mismatch
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, float):
            return value
        if lenient and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if hint is int and isinstance(value, bool):  # bool is a subclass of int: not an int here
        raise _Mismatch
    container = origin if origin is not None else hint
    if container is tuple and from_json and isinstance(value, list):
        value = tuple(value)
    if not isinstance(container, type):
        raise TypeError(f"unsupported annotation {hint!r}")
    if not isinstance(value, container):
        raise _Mismatch
    if not args:
        return value
    if container is list:
        return [_coerce(v, args[0], lenient, from_json) for v in value]
    if container is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], lenient, from_json) for v in value)
        if args == ((),):  # tuple[()]
            args = ()
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_coerce(v, a, lenient, from_json) for v, a in zip(value, args, strict=True))
    if container is dict:
        key, item = args
        return {
            _coerce(k, key, lenient, from_json): _coerce(v, item, lenient, from_json)
            for k, v in value.items()
        }
    return value  # other generics (set[int], Callable[..., T], type[T]): the outer type only


def _accepts_int(hint: Any) -> bool:
    if hint is int:
        return True
    arms = hint if isinstance(hint, tuple) else typing.get_args(hint)
    is_union = isinstance(hint, tuple) or typing.get_origin(hint) in (Union, types.UnionType)
    return is_union and any(_accepts_int(a) for a in arms)


def _check(cls: type, name: str, value: Any, hint: Any, from_json: bool = False) -> Any:
    try:
        return _coerce(value, hint, lenient=True, from_json=from_json)
    except _Mismatch:
        note = ""
        if isinstance(value, bool) and _accepts_int(hint):
            note = " A bool is not accepted for an int field (PyBlaze v1 accepted it)."
        raise TypeError(
            f"Expected {cls.__name__}.{name} to be {_type_name(hint)}. "
            f"Received: {_repr.repr(value)} ({type(value).__name__}).{note}"
        ) from None
    except TypeError as e:
        raise TypeError(
            f"Cannot check {cls.__name__}.{name}: {e}. Use int, float, bool, str, list, tuple, "
            f"dict, Optional/Union, Literal, their generics (list[int]), a class or a tuple of "
            f"classes."
        ) from None


def _type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, which also accepts PyBlaze v1's tuple-of-types annotations
    (``x: (int, float)``) written as strings (``from __future__ import annotations``)."""
    try:
        return typing.get_type_hints(cls)
    except TypeError:  # "Forward references must evaluate to types. Got (<class 'int'>, ...)"
        pass
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        module = sys.modules.get(klass.__module__)
        for name, hint in inspect.get_annotations(klass).items():
            if isinstance(hint, str):
                # what get_type_hints does with a string annotation, without its type check
                hint = eval(hint, vars(module) if module else {}, dict(vars(klass)))
            hints[name] = hint
    return hints


@functools.cache
def _fields(cls: type) -> dict[str, Any]:
    """The fields of a Config class, base classes first: name -> resolved annotation."""
    try:
        hints = _type_hints(cls)
    except NameError as e:
        raise TypeError(
            f"Cannot resolve the annotations of {cls.__name__}: {e}. With `from __future__ import "
            f"annotations`, annotations must name types importable from the config's module."
        ) from e
    return {
        name: hint
        for name, hint in hints.items()
        if not name.startswith("_")
        and hint is not ClassVar
        and typing.get_origin(hint) is not ClassVar
    }


def _json_path(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    return path if path.suffix == ".json" else path.with_name(path.name + ".json")


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
            FileNotFoundError: If the file does not exist.
            ValueError: If it is not a JSON object of valid field values; the message names it.

        Example:
            >>> config = ModelConfig.load("runs/model")  # doctest: +SKIP
        """
        path = require_file(_json_path(path), f"a {cls.__name__} JSON file")
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(
                f"Expected '{path}' to hold a {cls.__name__} as a JSON object. "
                f"Received a file that is not valid JSON ({e})."
            ) from e
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
    """Reads a state dict written by :func:`save_weights` onto the CPU without running pickled
    code (``torch.load(..., weights_only=True)``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a state dict of tensors; the message names it.

    Example:
        >>> model.load_state_dict(load_weights("runs/model.pt"))  # doctest: +SKIP
    """
    path = require_file(path, "a weights file (.pt)")
    expected = f"Expected '{path}' to hold a state dict of tensors written by torch.save"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for malformed files
        if isinstance(e, pickle.UnpicklingError):
            reason = "it holds objects other than tensors, or it is not a torch file"
        else:
            detail = str(e).strip().splitlines()
            reason = f"{type(e).__name__}: {detail[0][:200]}" if detail else type(e).__name__
        raise ValueError(
            f"{expected}. It could not be read safely ({reason}). Loading never runs pickled code."
        ) from e
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"{expected}. Received: a {type(state).__name__}.")
    return state


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
