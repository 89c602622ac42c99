"""Which Lightning a call runs on: ``pytorch_lightning`` or the unified ``lightning.pytorch``.

Both packages ship the same Trainer under two names, and their classes do not mix (a
``lightning.pytorch`` callback is not a ``pytorch_lightning.Callback``). A call runs on the
namespace of the Lightning objects it is given; with none, on ``pytorch_lightning``, the default
dependency.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType

from pyblaze_pl._signals import deferred_sigint

_PACKAGES = {"pytorch_lightning": "pytorch_lightning", "lightning": "lightning.pytorch"}
DEFAULT = "pytorch_lightning"


def origin(obj: object) -> str | None:
    """The Lightning package whose class ``obj`` is an instance of (by its class hierarchy), or
    ``None`` for objects of neither.

    Example:
        >>> origin(object()) is None
        True
    """
    for cls in type(obj).__mro__:
        root = cls.__module__.split(".")[0]
        if root in _PACKAGES or root == "lightning_fabric":
            return "lightning" if root == "lightning" else "pytorch_lightning"
    return None


def choose(objects: Iterable[tuple[str, object]]) -> str:
    """The package a call runs on, given ``(description, object)`` pairs of what it received.

    Raises:
        TypeError: If objects of both packages were given; the message names them.

    Example:
        >>> choose([("callbacks[0]", object())])
        'pytorch_lightning'
    """
    found: dict[str, list[str]] = {}
    for description, obj in objects:
        package = origin(obj)
        if package is not None:
            found.setdefault(package, []).append(f"{description} ({type(obj).__name__})")
    if len(found) > 1:
        raise TypeError(
            "Expected Lightning objects of one package per call. Received objects of both "
            f"`pytorch_lightning` ({', '.join(found['pytorch_lightning'])}) and `lightning` "
            f"({', '.join(found['lightning'])}). Import all of them from one package: "
            "`pytorch_lightning...` or `lightning.pytorch...`."
        )
    return next(iter(found), DEFAULT)


def load(package: str) -> ModuleType:
    """The Trainer namespace of ``package`` (``pytorch_lightning`` or ``lightning.pytorch``).

    Raises:
        ImportError: If the package is not installed; the message says how to install it.
    """
    try:
        with deferred_sigint():  # a Ctrl-C mid-import would break every later call
            return importlib.import_module(_PACKAGES[package])
    except ImportError as e:
        extra = "pip install 'pyblaze_pl[lightning]'" if package == "lightning" else ""
        raise ImportError(
            f"Expected the `{package}` package, which the Lightning objects passed to this call "
            f"come from. It could not be imported ({e}). {extra}".rstrip()
        ) from e
