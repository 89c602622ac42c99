"""Every place where the library relies on a Lightning or torchmetrics internal.

Each entry is feature-detected, says why no public API serves, and names the versions it was
checked on. A new Lightning or torchmetrics release is checked by reading this file and running
``make test`` and ``make test-oldest``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from pyblaze_pl._lightning.context import compiled_wrapper
from pyblaze_pl._lightning.data import Batches
from pyblaze_pl._lightning.interrupts import Terminated


def fit_options(trainer_fit: Callable[..., Any], ckpt_path: str | None) -> dict[str, Any]:
    """``Trainer.fit`` keywords that load ``ckpt_path`` without running pickled code.

    ``Trainer.fit(weights_only=...)`` exists from pytorch-lightning 2.6.0. Before it, Lightning
    calls ``torch.load`` without the argument, which torch >= 2.6 treats as ``weights_only=True``.
    Checked on pytorch-lightning / lightning 2.4.0, 2.5.6 and 2.6.6.
    """
    if ckpt_path is None:
        return {}
    if "weights_only" in inspect.signature(trainer_fit).parameters:
        return {"ckpt_path": ckpt_path, "weights_only": True}
    return {"ckpt_path": ckpt_path}


@contextmanager
def pyblaze_interrupts(trainer: Any, fit: bool) -> Iterator[None]:
    """Ctrl-C and SIGTERM on the Trainer as on the Fabric runner: Ctrl-C ends ``fit``, which
    returns, and raises ``KeyboardInterrupt`` from ``evaluate``/``predict``; SIGTERM ends the
    process with status 143 (:class:`~.interrupts.Terminated`).

    After a ``KeyboardInterrupt``, Lightning runs ``on_exception`` hooks and tears down, then
    calls ``sys.exit(1)``; after SIGTERM its loops raise ``SIGTERMException``, a ``SystemExit``
    whose status is 0. There is no option to change either, so the ``SystemExit`` is replaced
    when, and only when, the Trainer reports itself interrupted (its public ``interrupted`` and
    ``received_sigterm``). Checked on 2.4.0, 2.5.6 and 2.6.6.
    """
    try:
        yield
    except SystemExit as e:
        if getattr(trainer, "received_sigterm", False):
            raise Terminated(trainer.state.fn) from e
        if not trainer.interrupted:
            raise
        if not fit:
            raise KeyboardInterrupt from e
    if getattr(trainer, "received_sigterm", False):  # it came during the last batch: no check
        raise Terminated(trainer.state.fn)


def shut_down_workers(loader: Any) -> None:
    """Ends the worker processes of a DataLoader's kept iterator (``persistent_workers=True``),
    as the Trainer does when a call ends (Lightning's ``_shutdown_workers_and_reset_iterator``,
    written out so that the Fabric runner does not import the Trainer). torch keeps the iterator
    in the private ``_iterator``; checked on torch 2.4 to 2.14."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is None:
        return
    if isinstance(iterator, _MultiProcessingDataLoaderIter):
        iterator._shutdown_workers()
    loader._iterator = None


def restarts_epochs(trainer: Any) -> bool:
    """Whether Lightning resumes the way pytorch-lightning 2.4 does, before the restart rework of
    2.5 (``RestartStage``, ``fit_loop.is_resuming``). On resuming, 2.4:

    - creates the train loader's iterator (which draws a shuffling seed) again after
      ``on_train_epoch_start`` in ``_TrainingEpochLoop.on_run_start``, discarding the one created
      before ``on_train_start`` (2.5 and later keep that one while ``is_resuming``);
    - calls ``on_train_epoch_start`` for the epoch it resumes in: one interrupted mid-way, or one
      whose validation had ended (it validates that one again, then ends it);
    - does not validate at the end of an epoch resumed mid-way.

    No public API says which. Checked on 2.4.0 (all three), 2.5.6 and 2.6.6 (none).
    """
    return not hasattr(trainer.fit_loop, "is_resuming")


def run_after_module_hook(
    module: nn.Module, hook: str, then: Callable[[], None]
) -> Callable[[], None]:
    """Makes ``module.<hook>()`` call ``then()`` after itself; returns the undo function.

    Used for LightningModule estimators only, to record the epoch after the module's own
    ``on_train_epoch_end`` (whose logged values belong to the epoch) and before Lightning's
    monitoring callbacks (``ModelCheckpoint``, ``EarlyStopping``), which Lightning calls right
    after the module's hook (``_FitLoop.on_advance_end``). Callbacks cannot run there: their
    ``on_train_epoch_end`` runs before the module's, and Lightning has no later epoch hook before
    its monitoring callbacks. The adapter module of plain models defines the hook itself and needs
    none of this. The wrapper is set on the instance and removed when the call ends.
    Checked on 2.4.0, 2.5.6 and 2.6.6.
    """
    original = getattr(module, hook)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        then()
        return result

    module.__dict__[hook] = wrapped

    def undo() -> None:
        if module.__dict__.get(hook) is wrapped:
            del module.__dict__[hook]

    return undo


def apply_except(metric: Any, fn: Callable, exclude_state: Any, keep: str) -> tuple[Any, bool]:
    """Calls torchmetrics' ``Metric._apply`` for every state but ``keep``, when it can.

    ``LossMean`` (nn/_streaming.py) keeps its running sum in the widest float the device has
    (float64; float32 on Apple MPS), which ``Metric._apply`` would cast along with the other
    states. torchmetrics has no public way to exempt a state from a dtype change;
    ``_apply(fn, exclude_state=...)`` (1.3 and later) and the ``_defaults`` dict are internals.
    Returns the result and whether ``keep`` was left alone (``False``: it was converted like the
    others). Checked on torchmetrics 1.3.1 and 1.9.0.
    """
    parent = super(type(metric), metric)._apply
    if "exclude_state" in inspect.signature(parent).parameters:
        return parent(fn, exclude_state=(*exclude_state, keep)), True
    return parent(fn), False


def metric_defaults(metric: Any) -> dict[str, Any]:
    """torchmetrics' per-state reset values (``Metric._defaults``), for :func:`apply_except`."""
    return metric._defaults


def strategy_checkpoint_io(strategy: Any) -> Any:
    """The ``CheckpointIO`` the user gave a strategy object, or None.

    ``Strategy.checkpoint_io`` (the public property) creates a default one when none was given,
    so the attribute behind it (``_checkpoint_io``) is read instead. Checked on 2.4.0, 2.5.6 and
    2.6.6.
    """
    return getattr(strategy, "_checkpoint_io", None)


def metrics_snapshot(trainer: Any) -> dict[str, Any]:
    """The Trainer's ``callback_metrics`` now, for :func:`logged_since`."""
    return dict(trainer.callback_metrics)


def logged_since(trainer: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The ``callback_metrics`` entries logged (again) since ``snapshot`` was taken.

    ``Trainer.callback_metrics`` keeps every value ever logged: one logged only in some epochs
    is still there, unchanged, in the others. Lightning has no public record of what was logged
    in the current epoch. Reading ``callback_metrics`` recomputes the values logged since the
    last reset of its result collection, as new (detached) tensors, and leaves the others
    untouched (``_ResultCollection.metrics`` skips results with ``has_reset``); so a value is new
    exactly when it is not the same tensor object as in the snapshot. Checked on 2.4.0, 2.5.6
    and 2.6.6.
    """
    return {k: v for k, v in trainer.callback_metrics.items() if snapshot.get(k) is not v}


def predict_loader(data: Any, world_size: int) -> Any:
    """The loader to hand to ``Trainer.predict``.

    For prediction, Lightning (2.4.0-2.6.6, ``_DataConnector._prepare_dataloader``) re-creates
    every ``DataLoader`` to track sample indices. That fails with a ``MisconfigurationException``
    for a DataLoader subclass whose ``__init__`` arguments are not attributes of the same name.
    One process needs no index tracking (predictions are collected in order), so such a loader
    is passed as a plain iterable; several processes keep Lightning's distributed sampler.
    """
    is_subclass = isinstance(data, DataLoader) and type(data) is not DataLoader
    return Batches(data) if is_subclass and world_size == 1 else data


@contextmanager
def compiled_forward(model: nn.Module) -> Iterator[None]:
    """Runs the body with ``model.forward`` compiled as the ``torch.compile`` wrapper the call was
    reached through compiles it (Lightning's ``from_compiled`` does the same to a
    LightningModule); the model's own ``forward`` comes back afterwards, and checkpoints keep the
    model's own keys. Reads ``OptimizedModule``'s ``_orig_mod`` and ``dynamo_ctx``, as Lightning
    does; checked on torch 2.4 to 2.14.
    """
    wrapper = compiled_wrapper()
    if wrapper is None or getattr(wrapper, "_orig_mod", None) is not model:
        yield
        return
    context = wrapper.dynamo_ctx
    own = model.__dict__.get("forward")
    model.forward = context(model.forward)
    try:
        yield
    finally:
        if own is None:
            del model.forward
        else:
            model.forward = own


def special_ckpt_path(trainer: Any, ckpt_path: str) -> str | None:
    """The file Lightning's ``ckpt_path="last"``, ``"best"`` or ``"hpc"`` names for ``trainer``,
    resolved as ``Trainer.fit`` resolves it (None, with Lightning's warning, when there is none
    yet), so that the file is checked before Lightning loads it. Lightning has no public function
    for it: ``_CheckpointConnector._parse_ckpt_path``, the same on 2.4.0 to 2.6.6."""
    states = importlib.import_module(type(trainer).__module__.rsplit(".", 1)[0] + ".states")
    fn = states.TrainerFn.FITTING
    path = trainer._checkpoint_connector._parse_ckpt_path(fn, ckpt_path, True, False)
    return None if path is None else str(path)
