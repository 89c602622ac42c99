"""Data and checkpoints in Lightning's shapes: LightningDataModules in place of loaders, several
validation loaders, the special ``ckpt_path`` values, and which of a LightningModule's own steps
a call runs.

Nothing here imports Lightning at module level: :func:`is_datamodule` and :func:`overrides` look
at class hierarchies, so that the plain engine code may call them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from typing import Any

from pyblaze_pl._io import require_file

_DATAMODULES = ("pytorch_lightning.core.datamodule", "lightning.pytorch.core.datamodule")
_MODULES = ("pytorch_lightning.core.module", "lightning.pytorch.core.module")
# ckpt_path values that Lightning resolves itself (Trainer.fit/validate/predict).
SPECIAL_CKPT = ("last", "best", "hpc")


def _base(obj: object, name: str, modules: tuple[str, ...]) -> type | None:
    return next(
        (c for c in type(obj).__mro__ if c.__name__ == name and c.__module__ in modules), None
    )


def is_datamodule(obj: object) -> bool:
    """Whether ``obj`` is a LightningDataModule of either namespace (without importing Lightning).

    Example:
        >>> is_datamodule(object())
        False
    """
    return _base(obj, "LightningDataModule", _DATAMODULES) is not None


def overrides(obj: object, method: str) -> bool:
    """Whether the LightningModule or LightningDataModule ``obj`` defines ``method`` itself
    (rather than inheriting Lightning's default).

    Example:
        >>> overrides(object(), "predict_step")
        False
    """
    base = _base(obj, "LightningDataModule", _DATAMODULES) or _base(
        obj, "LightningModule", _MODULES
    )
    if base is None:
        return False
    return getattr(type(obj), method, None) is not getattr(base, method, None)


def is_lightning_module(obj: object) -> bool:
    """Whether ``obj`` is a LightningModule of either namespace (without importing Lightning).

    Example:
        >>> is_lightning_module(object())
        False
    """
    return _base(obj, "LightningModule", _MODULES) is not None


def own_step(engine: Any, method: str) -> bool:
    """Whether a call of ``engine`` runs its LightningModule's own ``method``
    (``validation_step``, ``predict_step``): for LightningModule estimators trained by their own
    steps (engines with ``trains_itself``, :class:`~pyblaze_pl.nn.LightningEngine`) that define
    it."""
    return getattr(engine, "trains_itself", False) and overrides(engine.model, method)


def provides_validation(data: object, val_data: object) -> bool:
    """Whether a fit on ``data`` (a loader or a DataModule) with ``val_data`` validates."""
    return val_data is not None or (is_datamodule(data) and overrides(data, "val_dataloader"))


def check_single_loader(data: object, name: str) -> None:
    """Refuses a list, tuple or dict of loaders (Lightning's several-dataloaders shape), which
    the library does not combine, before any training."""
    items = list(data.values()) if isinstance(data, Mapping) else data
    if not isinstance(data, (list, tuple, Mapping)) or not items:
        return
    if all(_is_loader(item) for item in items):
        kind = type(data).__name__
        raise ValueError(
            f"Expected {name} to be one loader. Received: a {kind} of {len(items)} loaders. "
            f"Loaders are not combined: pass one as {name} and run the others in calls of "
            f"their own (e.g. `model.evaluate(loader, metrics=...)` after training), or "
            f"concatenate their data sets (torch.utils.data.ConcatDataset)."
        )


def _is_loader(obj: object) -> bool:
    from torch.utils.data import DataLoader

    return isinstance(obj, DataLoader)


def fit_sources(train_data: Any, val_data: Any, stack: ExitStack) -> tuple[Any, ...]:
    """The data arguments of ``Trainer.fit`` (``train_dataloaders``, ``val_dataloaders``,
    ``datamodule``) for ``train_data`` (a loader or a DataModule) and ``val_data``.

    A DataModule goes to Lightning as ``datamodule=``, the user's object itself (so that
    ``trainer.datamodule`` is it, attributes included): Lightning calls its ``prepare_data`` and
    ``setup("fit")`` and uses its ``train_dataloader`` and ``val_dataloader`` (and its batch
    transfer hooks and checkpoint state). With ``val_data`` given, its ``val_dataloader`` returns
    ``val_data`` until ``stack`` closes (see :func:`validating_on`).
    """
    if not is_datamodule(train_data):
        return (one_iterable(train_data), one_iterable(val_data))
    if val_data is not None:
        stack.callback(validating_on(train_data, one_iterable(val_data)))
    return (None, None, train_data)


def validating_on(datamodule: Any, val_data: Iterable) -> Callable[[], None]:
    """Makes ``datamodule.val_dataloader()`` return ``val_data``; returns the undo function.

    Lightning takes either a DataModule or loaders in ``Trainer.fit``, never both, so the
    DataModule's ``val_dataloader`` is set on the instance (a function in its ``__dict__``, which
    Lightning's ``is_overridden`` counts as defined) for the call and removed afterwards; an
    attribute of that name the instance had is put back.

    Example:
        >>> undo = validating_on(datamodule, val_loader)  # doctest: +SKIP
        >>> datamodule.val_dataloader() is val_loader  # doctest: +SKIP
        True
        >>> undo()  # doctest: +SKIP
    """
    missing = object()
    own = datamodule.__dict__.get("val_dataloader", missing)

    def val_dataloader() -> Any:
        return val_data

    datamodule.__dict__["val_dataloader"] = val_dataloader

    def undo() -> None:
        if datamodule.__dict__.get("val_dataloader") is not val_dataloader:
            return
        if own is missing:
            del datamodule.__dict__["val_dataloader"]
        else:
            datamodule.__dict__["val_dataloader"] = own

    return undo


def sources(data: Any) -> tuple[list[Any], dict[str, Any]]:
    """The data arguments of ``Trainer.validate`` or ``Trainer.predict``: a loader goes as the
    ``dataloaders`` argument, a DataModule as ``datamodule=`` (its ``val_dataloader`` or
    ``predict_dataloader`` is used, after ``setup("validate")``/``setup("predict")``)."""
    return ([], {"datamodule": data}) if is_datamodule(data) else ([one_iterable(data)], {})


class Batches:
    """A list or tuple of batches as one iterable: Lightning reads a list as several loaders."""

    def __init__(self, batches: list[Any] | tuple[Any, ...]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.batches)


def one_iterable(data: Any) -> Any:
    """``data`` as the Trainer reads one source of batches: a list or tuple of batches (as a
    plain loop iterates it) is wrapped, anything else is kept.

    Example:
        >>> len(one_iterable([(1, 2), (3, 4)]))
        2
    """
    return Batches(data) if isinstance(data, (list, tuple)) else data


def check_datamodule(data: Any, method: str, call: str) -> None:
    """Refuses, before running, a DataModule without the loader method ``call`` needs."""
    if is_datamodule(data) and not overrides(data, method):
        raise ValueError(
            f"Expected a LightningDataModule that defines `{method}` for {call}. Received: "
            f"{type(data).__name__}, which does not. Define it, or pass a loader instead."
        )


def resolve_ckpt_path(ckpt_path: str | os.PathLike | None) -> str | None:
    """``ckpt_path`` for ``Trainer.fit``: Lightning's special values (``"last"``, ``"best"``,
    ``"hpc"``) are left to Lightning, which resolves them as in a plain Lightning run (``"last"``:
    the newest ``last.ckpt`` of the call's ModelCheckpoint callbacks, or none); a path must name
    an existing file.

    Example:
        >>> resolve_ckpt_path("last")
        'last'
    """
    if ckpt_path is None:
        return None
    if isinstance(ckpt_path, str) and (ckpt_path in SPECIAL_CKPT):
        return ckpt_path
    return str(require_file(ckpt_path, "a Lightning checkpoint (ckpt_path)"))


def first_batch(data: Any) -> Any:
    """The first batch of ``data``, read without iterating it (an iteration draws a seed from the
    global generator, starts worker processes and advances a loader's own generator): for a
    DataLoader over a map-style data set with a batch size, its ``collate_fn`` of the first
    samples; for a list or tuple of batches, the first. ``None`` where it cannot be read so (an
    ``IterableDataset``, a custom batch sampler, another iterable): the check is skipped.
    """
    from torch.utils.data import DataLoader, IterableDataset

    if isinstance(data, (list, tuple)):
        return data[0] if data else None
    if not isinstance(data, DataLoader) or isinstance(data.dataset, IterableDataset):
        return None
    if data.batch_size is None:
        return None
    try:
        size = min(data.batch_size, len(data.dataset))  # type: ignore[arg-type]
    except TypeError:
        return None
    return data.collate_fn([data.dataset[i] for i in range(size)])
