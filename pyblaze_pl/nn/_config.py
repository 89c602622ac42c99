"""Model architecture as data: :class:`Config`, typed fields declared by annotations, checked on
construction, on assignment and when read from JSON (PyBlaze v1's ``pyblaze.nn.Config``, stricter).

Public as ``pyblaze_pl.nn.configurable.Config`` and ``xnn.Config``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import json
import os
import reprlib
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

from pyblaze_pl._files import read_json
from pyblaze_pl._io import atomic_write, require_file

__all__ = ["Config"]

_C = TypeVar("_C", bound="Config")
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
