"""Serves ``import pyblaze...`` from pyblaze_pl for one process, without touching any file.

An import hook (a ``sys.meta_path`` finder) answers every ``pyblaze`` module name with a small
proxy module that reads its attributes from pyblaze_pl: ``pyblaze.nn`` (and its submodules,
such as ``pyblaze.nn.callbacks``) from ``pyblaze_pl.nn``, ``pyblaze.nn.functional`` from
``pyblaze_pl.nn.functional``. Proxies, not the pyblaze_pl modules themselves, are what the
import system registers, so pyblaze_pl's own modules keep their names and attributes.
PyBlaze modules that pyblaze_pl does not provide fail to import with the replacement that
docs/migration.md §1 gives.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

__all__ = ["install", "uninstall"]

# PyBlaze top-level packages without a counterpart, and what docs/migration.md §1 says instead.
_DROPPED = {
    "pyblaze.optim": "optim.LAMB is dropped: use a maintained implementation such as "
    "torch_optimizer.Lamb (package torch-optimizer)",
    "pyblaze.multiprocessing": "Vectorizer is dropped: use DataLoader(num_workers=...) for data "
    "and Lightning strategies for models",
    "pyblaze.utils": "PyBlaze's internal helpers are dropped: the progress loggers cover the "
    "console output, gpu= the devices",
    "pyblaze.plot": "plot.density_plot2d is dropped",
}


def _target(name: str) -> str | None:
    """The pyblaze_pl module whose attributes the PyBlaze module ``name`` shows."""
    if name == "pyblaze":
        return None
    if name == "pyblaze.nn.functional" or name.startswith("pyblaze.nn.functional."):
        return "pyblaze_pl.nn.functional"
    if name == "pyblaze.nn" or name.startswith("pyblaze.nn."):
        return "pyblaze_pl.nn"
    top = ".".join(name.split(".")[:2])
    reason = _DROPPED.get(top, "pyblaze_pl provides pyblaze.nn and pyblaze.nn.functional only")
    raise ModuleNotFoundError(
        f"{name} is not served by pyblaze_pl: {reason} (docs/migration.md §1). Expected an "
        f"import of pyblaze.nn, pyblaze.nn.functional or one of their submodules. Received: "
        f"import {name}.",
        name=name,
    )


class _Proxy(types.ModuleType):
    """A module whose missing attributes are read from a pyblaze_pl module."""

    def __init__(self, name: str, target: str | None) -> None:
        super().__init__(name)
        self.__dict__["_pyblaze_pl_target"] = target

    def __getattr__(self, attribute: str) -> Any:
        target = self.__dict__["_pyblaze_pl_target"]
        if target is None or (attribute.startswith("__") and attribute != "__all__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {attribute!r}")
        return getattr(importlib.import_module(target), attribute)

    def __repr__(self) -> str:
        target = self.__dict__["_pyblaze_pl_target"]
        return f"<module {self.__name__!r} (served by {target or 'pyblaze_pl'})>"

    def __dir__(self) -> list[str]:
        target = self.__dict__["_pyblaze_pl_target"]
        names = set(super().__dir__())
        if target is not None:
            names |= set(dir(importlib.import_module(target)))
        return sorted(names)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads every ``pyblaze`` module name as a :class:`_Proxy`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "pyblaze" and not fullname.startswith("pyblaze."):
            return None
        _target(fullname)  # raises for the modules pyblaze_pl does not provide
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _Proxy(spec.name, _target(spec.name))
        module.__path__ = []  # a package, so that submodules can be imported
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        target = module.__dict__["_pyblaze_pl_target"]
        if target is not None:
            importlib.import_module(target)


def install() -> None:
    """Serves ``import pyblaze...`` from pyblaze_pl in this process (until :func:`uninstall`).

    PyBlaze modules imported before are forgotten first, so the next import is served.

    Example:
        >>> install()  # doctest: +SKIP
        >>> import pyblaze.nn as xnn  # doctest: +SKIP
        >>> xnn.Estimator  # doctest: +SKIP
        <class 'pyblaze_pl.nn.estimator.Estimator'>
    """
    uninstall()
    for name in [n for n in sys.modules if n == "pyblaze" or n.startswith("pyblaze.")]:
        del sys.modules[name]
    sys.meta_path.insert(0, _Finder())


def uninstall() -> None:
    """Removes the hook of :func:`install` (modules it served stay in ``sys.modules``)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
