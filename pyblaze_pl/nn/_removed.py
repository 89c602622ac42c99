"""PyBlaze names that the library does not provide, and the error that names their replacement.

``pyblaze_pl.nn`` resolves these names in a module-level ``__getattr__`` (:func:`module_getattr`),
so importing the package stays cheap and silent, and only code that *uses* a removed name fails:

- ``xnn.DataParallel`` raises :class:`RemovedNameError`, an ``AttributeError`` whose message names
  the replacement; being an ``AttributeError``, ``hasattr(xnn, "DataParallel")`` is ``False`` and
  ``getattr(xnn, "DataParallel", None)`` is ``None``, so feature checks keep working.
- ``from pyblaze_pl.nn import DataParallel`` raises an ``ImportError`` with the same message.
  (Python turns any ``AttributeError`` raised during a ``from`` import into its own
  ``cannot import name`` message and drops ours, so the from-import gets an ``ImportError``, the
  type that a failed ``from`` import raises anyway.)
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn

__all__ = ["NN_REMOVED", "RemovedNameError", "module_getattr"]

_IMPORT_FROM = dis.opmap.get("IMPORT_FROM")


class RemovedNameError(AttributeError):
    """A PyBlaze name that the library does not provide; the message names the replacement.

    Example:
        >>> import pyblaze_pl.nn as xnn
        >>> xnn.DataParallel(model)  # doctest: +SKIP
        RemovedNameError: xnn.DataParallel (PyBlaze v1) was removed: pass gpu=[0, 1, ...] ...
        >>> hasattr(xnn, "DataParallel")
        False
    """


_DDP = "pass gpu=[0, 1, ...] to fit/train instead: Lightning DDP, one process per GPU"

# name -> (PyBlaze versions that had it, replacement). docs/migration.md lists the same names.
NN_REMOVED: dict[str, tuple[str, str]] = {
    "DataParallel": ("v1", f"{_DDP} (see docs/distributed.md)"),
    "SynchronizationCallback": (
        "v1",
        f"it synchronised hand-made training processes through queues; {_DDP}, or "
        "trainer_kwargs={'strategy': ...} for another Lightning strategy",
    ),
    "ModelSharingCallback": (
        "v1",
        f"it shared a model between hand-made training processes; {_DDP}, or "
        "trainer_kwargs={'strategy': ...} for another Lightning strategy",
    ),
}


def removed_message(alias: str, name: str, versions: str, replacement: str) -> str:
    """The error message for a removed name.

    Example:
        >>> removed_message("xnn", "DataParallel", "v1", "pass gpu=[0, 1] instead")
        'xnn.DataParallel (PyBlaze v1) was removed: pass gpu=[0, 1] instead. See docs/migration.md.'
    """
    return f"{alias}.{name} (PyBlaze {versions}) was removed: {replacement}. See docs/migration.md."


def module_getattr(
    module_name: str, alias: str, removed: Mapping[str, tuple[str, str]]
) -> Callable[[str], NoReturn]:
    """A module-level ``__getattr__`` that raises the migration error for the ``removed`` names.

    Args:
        module_name: The module's ``__name__``.
        alias: How users refer to the module in code, e.g. ``"xnn"``.
        removed: Removed name -> (PyBlaze versions that had it, replacement).

    Example:
        >>> __getattr__ = module_getattr(__name__, "xnn", NN_REMOVED)  # doctest: +SKIP
    """

    def __getattr__(name: str) -> NoReturn:
        if name not in removed:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        message = removed_message(alias, name, *removed[name])
        if _in_from_import():
            raise ImportError(message, name=module_name)
        raise RemovedNameError(message, name=name, obj=sys.modules.get(module_name))

    return __getattr__


def _in_from_import() -> bool:
    """Whether the code that asked for the attribute runs ``from <module> import <name>``."""
    try:
        frame = sys._getframe(2)  # 0: here, 1: the module's __getattr__, 2: the caller
        return frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
    except (AttributeError, IndexError, ValueError):  # another interpreter, no frame, ...
        return False
