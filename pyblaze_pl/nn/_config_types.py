"""The types of Config fields: checking and coercing values against annotations, for
:class:`~pyblaze_pl.nn.configurable.Config`."""

from __future__ import annotations

import functools
import inspect
import os
import reprlib
import sys
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

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
