"""One ``fit``/``evaluate``/``predict`` call on Lightning: the Trainer, or Lightning Fabric.

A :class:`Run` owns everything the call needs: the Trainer or the Fabric loop, the adapter module
(or the user's LightningModule), the PyBlaze callbacks' dispatch, the History, and the batch
context engines read. Its one Lightning callback (:class:`~.hooks.Hooks`) forwards Lightning's
hooks to it; the Fabric loop calls the same methods in the same order. The epoch record is
:class:`~.epoch.Epochs`' (:meth:`~.epoch.Epochs.end_epoch` builds it, hands it to the PyBlaze
callbacks and applies their stop decisions, in one place).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from types import ModuleType
from typing import Any

import torch

from pyblaze_pl._lightning import compat, data, features, namespace, resume
from pyblaze_pl._lightning.batch_errors import explain_batch_error
from pyblaze_pl._lightning.checkpoint_io import (
    check_checkpoint,
    check_checkpoint_folders,
    with_atomic_checkpoints,
)
from pyblaze_pl._lightning.data import is_datamodule, is_lightning_module
from pyblaze_pl._lightning.devices import fast_cuda_checks, resolve_gpu
from pyblaze_pl._lightning.distributed import destroy_process_group_at_exit, gather_predictions
from pyblaze_pl._lightning.epoch import Epochs, to_host
from pyblaze_pl._lightning.hooks import Hooks
from pyblaze_pl._lightning.interrupts import InterruptGuard, announce_termination
from pyblaze_pl._lightning.module import TrainerContext, adapter_class
from pyblaze_pl._lightning.options import (
    CLIP_KEYS,
    RUNNERS,
    default_runner,
    split_callbacks,
    trainer_options,
)
from pyblaze_pl._lightning.quiet import quiet
from pyblaze_pl.nn._metrics import MetricSet
from pyblaze_pl.nn.callbacks._dispatch import Dispatch
from pyblaze_pl.nn.callbacks._modes import kept_modes
from pyblaze_pl.nn.results import Evaluation, History


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"keys {list(value)}"
    return f"{len(value)} values"


def _optimizers(values: Iterable[Any]) -> list[torch.optim.Optimizer]:
    """The optimizers among ``values``, also inside lists, tuples and dicts (each once)."""
    found: list[torch.optim.Optimizer] = []
    for value in values:
        items = value.values() if isinstance(value, Mapping) else value
        candidates = items if isinstance(value, (list, tuple, Mapping)) else [value]
        for item in candidates:
            if isinstance(item, torch.optim.Optimizer) and all(item is not o for o in found):
                found.append(item)
    return found


class Run(Epochs):
    """One call of ``train`` (``fit``), ``evaluate`` or ``predict`` of an engine.

    Args:
        engine: The engine whose batch methods run.
        gpu: PyBlaze's ``gpu=`` argument.
        callbacks: PyBlaze and Lightning callbacks, in any order.
        trainer_kwargs: Further Trainer options.
        runner: ``'auto'``, ``'trainer'`` or ``'fabric'`` (``'lean'``, its former name).
        data: The call's data (a loader or a LightningDataModule), for the namespace.
    """

    def __init__(
        self,
        engine: Any,
        *,
        gpu: object,
        callbacks: object,
        trainer_kwargs: Mapping[str, Any] | None,
        runner: str = "auto",
        data: object = None,
    ) -> None:
        if runner not in RUNNERS:
            close = [r for r in RUNNERS if str(runner).lower() == r]
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Expected runner to be one of {RUNNERS}: 'auto' (Lightning Fabric when the call "
                f"needs nothing of the Trainer, else the Trainer), 'trainer' or 'fabric' (force "
                f"one; 'lean' is the former name of 'fabric'). Received: {runner!r}.{hint}"
            )
        self.runner = runner
        self.engine = engine
        self.model = engine.model
        self.user_options = dict(trainer_kwargs or {})
        given = [("the model", self.model)] if is_lightning_module(self.model) else []
        given += [("the data", data)]
        self.datamodule = is_datamodule(data)
        if isinstance(callbacks, (list, tuple)):
            given += [(f"callbacks[{i}]", c) for i, c in enumerate(callbacks)]
        given += [(f"trainer_kwargs[{k!r}]", v) for k, v in self.user_options.items()]
        self.package = namespace.choose(given)
        self.gpu = gpu
        self.devices = resolve_gpu(gpu, self.model)
        pyblaze, self.lightning_callbacks = split_callbacks(callbacks)
        self.dispatch = Dispatch(self.model, [engine, *pyblaze])
        self.on_fabric = False
        self.context: Any = TrainerContext(self)
        self.history = History()
        self.metrics = MetricSet()
        self.optimizers: list[torch.optim.Optimizer] = []
        self.train_kwargs: dict[str, Any] = {}
        self.eval_kwargs: dict[str, Any] = {}
        self.predict_kwargs: dict[str, Any] = {}
        self.stop_on_nonfinite = True
        self.epochs = 0
        self.eval_every: int | None = None
        self.val_data: Any = None
        self.trainer: Any = None
        self.module: Any = None
        self.own_steps = False  # a LightningModule trained by its own training_step
        self.interrupts = InterruptGuard()
        self.predictions: list[Any] = []
        self.values: dict[str, torch.Tensor] = {}  # this epoch's validation values
        self.collated: list[Any] | None = None  # eval outputs kept for the engine's collate_*
        self._losses: list[torch.Tensor] = []
        self._losses_final = False
        self._silent_batches = 0  # manual optimization: batches that returned no loss
        self._pending: dict[str, Any] | None = None
        self._logged_before: dict[str, Any] = {}  # callback_metrics when the epoch started
        self._resumed: dict[str, Any] | None = None  # this rank's state from a checkpoint
        self._resumed_epoch: int | None = None  # the epoch a checkpoint interrupted mid-way
        # PyBlaze's model modes at its hooks (see nn/callbacks/_modes.py)
        self.user_training = getattr(self.model, "training", None)
        self.validated = False  # the current (or last) epoch ran validation: eval mode

    @functools.cached_property
    def pl(self) -> ModuleType:
        """The Lightning namespace of the call (imported on first use: the Fabric runner never
        needs the Trainer's)."""
        return namespace.load(self.package)

    def _choose_runner(self, ckpt_path: object = None) -> None:
        """The Fabric runner when the call needs nothing of the Trainer, else the Trainer;
        ``runner='fabric'`` for a call that needs the Trainer is refused."""
        from pyblaze_pl._lightning.fabric_loop import PRECISIONS

        runner = default_runner() if self.runner == "auto" else self.runner
        options = self.user_options
        precision = options.get("precision", "32-true")
        needs = [
            (bool(self.lightning_callbacks), "Lightning callbacks"),
            (bool(set(options) - {"precision"}), "trainer_kwargs other than precision"),
            (precision not in PRECISIONS, f"precision={precision!r}"),
            (ckpt_path is not None, "ckpt_path"),
            (self.own_steps, "a LightningModule trained by its own training_step"),
            (self.datamodule, "a LightningDataModule"),
            (self.devices.accelerator != "cpu" and len(self.devices.devices) != 1, "gpu=[...]"),
            (self.devices.accelerator == "cpu" and self.devices.devices != 1, "several devices"),
        ]
        reasons = [what for needed, what in needs if needed]
        if reasons and self.runner in ("fabric", "lean"):
            raise ValueError(
                f"Expected a call that the Fabric runner can run (one device; precision "
                f"'32-true', 'bf16-mixed' or '16-mixed'; no other Trainer features). Received: "
                f"{', '.join(reasons)}. Use runner='auto' or runner='trainer'."
            )
        self.on_fabric = runner not in ("trainer",) and not reasons
        if self.on_fabric:
            from pyblaze_pl._lightning.fabric_loop import FabricContext

            self.context = FabricContext(self)
            self.interrupts = InterruptGuard(sigterm=True)

    def _new_trainer(self, **options: Any) -> Any:
        if not self.on_fabric:
            trainer_kwargs = with_atomic_checkpoints(self.pl, trainer_options(self, **options))
            with quiet():  # the Trainer logs its device banners when it is built
                return self.pl.Trainer(**trainer_kwargs)
        from pyblaze_pl._lightning.fabric_loop import FabricLoop, FabricModule, new_fabric

        fabric = new_fabric(
            self.package,
            self.devices.accelerator,
            self.devices.devices,
            self.user_options.get("precision", "32-true"),
        )
        self.module = FabricModule(fabric.device)
        return FabricLoop(Hooks(self), fabric, options.get("max_epochs"))

    def step_context(self) -> Any:
        """The precision context of a step, for what the run computes outside one (the metrics):
        the Trainer's ``val_step_context``, or Fabric's ``autocast``."""
        if self.on_fabric:
            return self.trainer.fabric.autocast()
        return self.trainer.precision_plugin.val_step_context()

    # the three calls
    def fit(
        self,
        train_data: Iterable,
        val_data: Iterable | None,
        *,
        epochs: int,
        metrics: MetricSet,
        train_kwargs: dict[str, Any] | None = None,
        eval_kwargs: dict[str, Any] | None = None,
        ckpt_path: str | os.PathLike | None = None,
        stop_on_nonfinite: bool = True,
        accumulate_grad_batches: int = 1,
        eval_every: int | None = None,
    ) -> History:
        """Trains: ``Trainer.fit`` on the adapter module (or the user's LightningModule), or the
        Fabric loop."""
        self.metrics = metrics
        self.train_kwargs = train_kwargs or {}
        self.eval_kwargs = eval_kwargs or {}
        self.stop_on_nonfinite = stop_on_nonfinite
        self.epochs = epochs
        self.eval_every = eval_every  # PyBlaze's validation schedule (epoch.validates_after)
        self.val_data = val_data
        self.engine.history = self.history  # reachable however the call ends (as Keras)
        self.own_steps = self.engine.trains_itself
        ckpt_path = data.resolve_ckpt_path(ckpt_path)
        checkpoint = None
        if ckpt_path is not None and ckpt_path not in data.SPECIAL_CKPT:
            checkpoint = check_checkpoint(ckpt_path)  # before Lightning loads it (older: unsafely)
        options: dict[str, Any] = {"max_epochs": epochs}
        if self.lightning_callbacks:
            check_checkpoint_folders(self.pl, self.lightning_callbacks)
        self._choose_runner(ckpt_path)
        if self.own_steps:
            self.module = self.model
            options["accumulate_grad_batches"] = accumulate_grad_batches
        elif not self.on_fabric:
            self.module = adapter_class(self.pl)(self)
            self.optimizers = _optimizers(self.train_kwargs.values())
            self.context.clip = {
                k: self.user_options.pop(k) for k in CLIP_KEYS if k in self.user_options
            }
        self.trainer = self._new_trainer(**options)
        if ckpt_path in data.SPECIAL_CKPT:  # "last": the file it names is checked as any other
            ckpt_path = compat.special_ckpt_path(self.trainer, ckpt_path)
            checkpoint = None if ckpt_path is None else check_checkpoint(ckpt_path)
        if checkpoint is not None:
            hooks = next(c for c in self.trainer.callbacks if isinstance(c, Hooks))
            version = self.pl.__version__ if compat.restarts_epochs(self.trainer) else None
            resume.check_checkpoint(
                checkpoint, ckpt_path, self.module, train_data, hooks.state_key, version
            )
            resume.check_optimizers(checkpoint, str(ckpt_path), self.optimizers)
        start = time.monotonic()
        try:
            self._fit(train_data, val_data, ckpt_path)
        except BaseException as e:  # the History of the completed epochs is never lost
            with contextlib.suppress(AttributeError, TypeError):
                e.history = self.history  # type: ignore[attr-defined]
            raise
        finally:
            self.history.duration += time.monotonic() - start
        restored = [getattr(c, "restored_epoch", None) for c in self.dispatch.training]
        if any(epoch is not None for epoch in restored):  # EarlyStopping(restore_best=True)
            self.history.restored_epoch = [e for e in restored if e is not None][-1]
        return self.history

    def _fit(self, train_data: Any, val_data: Any, ckpt_path: str | None) -> None:
        with ExitStack() as stack:
            self._enter(stack, fit=True)
            if not self.own_steps:  # as every epoch will (Lightning warns of eval-mode modules)
                self.model.train()
            if self.own_steps:
                stack.callback(
                    compat.run_after_module_hook(self.module, "on_train_epoch_end", self.end_epoch)
                )
            if self.on_fabric:
                self.trainer.fit(self.module, train_data, val_data)
            else:
                fit_options = compat.fit_options(self.trainer.fit, ckpt_path)
                sources = data.fit_sources(train_data, val_data, stack)
                self.trainer.fit(self.module, *sources, **fit_options)

    def evaluate(self, loader: Any, metrics: MetricSet, kwargs: dict[str, Any]) -> Evaluation:
        """Computes ``metrics`` over ``data``: ``Trainer.validate`` on the adapter module, or the
        Fabric loop."""
        self.metrics = metrics
        self.eval_kwargs = kwargs
        self._set_up("validation_step")
        with ExitStack() as stack:
            self._enter(stack, fit=False)
            args, sources = data.sources(loader)
            self.trainer.validate(self.module, *args, **sources, verbose=False)
        # A LightningModule's logged values under the History's names (``val_loss`` for a value
        # logged on step and epoch, where validate returns only ``val_loss_epoch``).
        logged = self._logged_values() if self.own_steps else {}  # less metrics= (logged too)
        ours = {f"val_{name}" for name in self.values}
        values = {k: float(v) for k, v in logged.items() if k not in ours}
        values.update(zip(self.values, to_host(list(self.values.values())), strict=True))
        return Evaluation(values)

    def predict(self, loader: Any, kwargs: dict[str, Any]) -> Any:
        """The engine's outputs for every batch, in loader order, on the CPU."""
        self.predict_kwargs = kwargs
        self._set_up("predict_step")
        with ExitStack() as stack:
            self._enter(stack, fit=False)
            loader = compat.predict_loader(loader, self.trainer.world_size)
            args, sources = data.sources(loader)
            self.trainer.predict(self.module, *args, **sources, return_predictions=False)
        local = self.engine.collate_predictions(self.predictions)
        if self.trainer.world_size > 1:  # several processes: all predictions, in order
            return gather_predictions(local)
        return local

    def _set_up(self, step: str) -> None:
        """The runner, the module and the trainer of ``evaluate`` or ``predict``: a LightningModule
        estimator's own ``step`` runs if it defines one, else the engine's batch method."""
        self.own_steps = data.own_step(self.engine, step)
        self._choose_runner()
        if not self.on_fabric:
            self.module = self.model if self.own_steps else adapter_class(self.pl)(self)
        self.trainer = self._new_trainer()

    def _enter(self, stack: ExitStack, *, fit: bool) -> None:
        """What every call runs inside (the last entered is the innermost)."""
        stack.callback(destroy_process_group_at_exit)  # DDP: exit cleanly (see there)
        stack.enter_context(announce_termination())
        if not self.own_steps:  # an engine's model ends every call in the modes it started in
            stack.enter_context(kept_modes(self.model))
        stack.enter_context(compat.compiled_forward(self.model))
        stack.enter_context(quiet())
        if not self.on_fabric:
            stack.enter_context(compat.pyblaze_interrupts(self.trainer, fit))
            stack.enter_context(features.show_requested_output(self))
        stack.enter_context(fast_cuda_checks(self.devices))
        stack.enter_context(self.interrupts)

    # batches (called by the adapter module)
    def train_batch(self, batch: Any, batch_idx: int) -> torch.Tensor:
        context = self.context
        context.iteration = batch_idx
        total = context.num_iterations
        context.is_last_iteration = self.trainer.is_last_batch or (
            total is not None and batch_idx + 1 >= total
        )
        try:
            loss = self.engine.train_batch(batch, **self.train_kwargs)
        except Exception as e:  # what the user needs to fix it, with the original chained
            where = f"epoch {self.trainer.current_epoch + 1}"
            self._explained(e, batch, batch_idx, where=where, kwargs=self.train_kwargs)
            raise
        if isinstance(loss, torch.Tensor):
            return loss.detach()
        if isinstance(loss, (Mapping, list, tuple)):
            raise TypeError(
                f"Expected {type(self.engine).__name__}.train_batch to return one loss (a tensor "
                f"or a float). Received: a {type(loss).__name__} ({_describe(loss)}). pyblaze_pl "
                f"records one training loss per batch (train_loss, micro_train_loss): return the "
                f"loss to record (e.g. their sum) and report the parts from a callback or a "
                f"Lightning logger."
            )
        return torch.as_tensor(loss, dtype=torch.float32, device=self.module.device)

    def eval_batch(self, batch: Any, batch_idx: int) -> Any:
        try:
            return self.engine.eval_batch(batch, **self.eval_kwargs)
        except Exception as e:
            fit = self.trainer.state.fn == "fit"
            where = f"val_data after epoch {self.trainer.current_epoch + 1}" if fit else "evaluate"
            self._explained(e, batch, batch_idx, where=where, kwargs=self.eval_kwargs,
                            method="eval_batch")  # fmt: skip
            raise

    def predict_batch(self, batch: Any, batch_idx: int) -> Any:
        try:
            return self.engine.predict_batch(batch, **self.predict_kwargs)
        except Exception as e:
            self._explained(e, batch, batch_idx, where="predict", kwargs=self.predict_kwargs,
                            method="predict_batch")  # fmt: skip
            raise

    def _explained(self, error: Exception, batch: Any, batch_idx: int, **where: Any) -> None:
        """Raises ``error`` with the batch, shapes and likely fix added (chained), if any."""
        new = explain_batch_error(error, self.engine, batch, batch_idx, **where)
        if new is not None and new is not error:
            raise new from error

    # the epoch
