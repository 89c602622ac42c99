"""One ``fit``/``evaluate``/``predict`` call on a Lightning Trainer.

A :class:`Run` owns everything the call needs: the Trainer, the adapter module (or the user's
LightningModule), the PyBlaze callbacks' dispatch, the History, and the batch context engines read.
Its one Lightning callback (:class:`_Hooks`) forwards Lightning's hooks to it, and
:meth:`Run.end_epoch` is the one place that builds an epoch's record, hands it to the PyBlaze
callbacks and applies their stop decisions.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from types import ModuleType
from typing import Any

import torch

from pyblaze_pl._lightning import compat, data, features, namespace, resume
from pyblaze_pl._lightning import context as batch_context
from pyblaze_pl._lightning.batch_errors import explain_batch_error
from pyblaze_pl._lightning.checkpoint_io import check_checkpoint, with_atomic_checkpoints
from pyblaze_pl._lightning.data import is_datamodule, is_lightning_module
from pyblaze_pl._lightning.devices import fast_cuda_checks, resolve_gpu
from pyblaze_pl._lightning.distributed import (
    destroy_process_group_at_exit,
    equal_counts,
    gather_predictions,
    unpadded_samples,
)
from pyblaze_pl._lightning.interrupts import InterruptGuard
from pyblaze_pl._lightning.module import adapter_class
from pyblaze_pl._lightning.quiet import quiet
from pyblaze_pl._tensors import map_tensors, wide_float
from pyblaze_pl.nn._metrics import MetricSet
from pyblaze_pl.nn.callbacks._dispatch import Dispatch
from pyblaze_pl.nn.callbacks._modes import model_mode
from pyblaze_pl.nn.callbacks.base import CallbackException, PredictionCallback, TrainingCallback
from pyblaze_pl.nn.results import Evaluation, History

# Trainer options that PyBlaze arguments own: key -> the argument to use instead.
_RESERVED = {
    "max_epochs": "epochs=",
    "min_epochs": "epochs=",
    "accelerator": "gpu=",
    "callbacks": "callbacks=",
    "accumulate_grad_batches": "gradient_accumulation_steps=",
}
_CLIP_KEYS = ("gradient_clip_val", "gradient_clip_algorithm")


def to_host(tensors: Sequence[torch.Tensor]) -> list[float]:
    """All values of ``tensors`` as Python floats, with a single device-to-host transfer."""
    if not tensors:
        return []
    device = tensors[0].device
    dtype = wide_float(device)
    flat = [t.detach().reshape(-1).to(device=device, dtype=dtype) for t in tensors]
    return torch.cat(flat).tolist()


def _on_cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().cpu()


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"keys {list(value)}"
    return f"{len(value)} values"


def _count(batches: Any) -> int | None:
    """Lightning's batch count (a number, ``inf`` or a list of them) as PyBlaze's ``int | None``."""
    total = sum(batches) if isinstance(batches, list) else batches
    return int(total) if math.isfinite(total) else None


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


def split_callbacks(callbacks: object) -> tuple[list[object], list[Any]]:
    """Separates PyBlaze callbacks from Lightning callbacks, rejecting anything else."""
    if callbacks is None:
        return [], []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"Expected callbacks to be a list. Received: {type(callbacks).__name__}.")
    pyblaze, lightning = [], []
    for callback in callbacks:
        if callback is None:  # v1 ignored None entries
            continue
        if isinstance(callback, (TrainingCallback, PredictionCallback)):
            pyblaze.append(callback)
        elif namespace.origin(callback) is not None and hasattr(callback, "on_train_start"):
            lightning.append(callback)
        else:
            raise _not_a_callback(callback)
    return pyblaze, lightning


def _not_a_callback(callback: object) -> TypeError:
    name = type(callback).__name__
    hint = ""
    if namespace.origin(callback) is not None and hasattr(callback, "log_metrics"):
        hint = f" A Lightning logger goes to trainer_kwargs={{'logger': {name}(...)}}."
    shown = repr(callback) if type(callback).__repr__ is not object.__repr__ else "an instance"
    return TypeError(
        f"Expected each callback to be a PyBlaze TrainingCallback/PredictionCallback or a "
        f"Lightning Callback. Received: {shown[:80]} ({name}).{hint}"
    )


def _check_trainer_keys(pl: ModuleType, options: Mapping[str, Any]) -> None:
    """Refuses ``trainer_kwargs`` keys that Lightning's Trainer does not take, with the closest
    valid key, before the Trainer is built."""
    valid = [p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self"]
    unknown = [k for k in options if k not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"Expected trainer_kwargs keys that Lightning's Trainer takes. Received: "
            f"{unknown[0]!r}.{hint} Valid keys: {', '.join(valid)}."
        )


RUNNERS = ("auto", "trainer", "lean")


def default_runner() -> str:
    """What ``runner='auto'`` means: the ``PYBLAZE_PL_RUNNER`` environment variable
    (``'trainer'`` or ``'lean'`` force one runner wherever it can run), else ``'auto'``."""
    value = os.environ.get("PYBLAZE_PL_RUNNER", "auto")
    if value not in RUNNERS:
        raise ValueError(
            f"Expected the environment variable PYBLAZE_PL_RUNNER to be one of {RUNNERS}. "
            f"Received: {value!r}."
        )
    return value


class Run:
    """One call of ``train`` (``fit``), ``evaluate`` or ``predict`` of an engine.

    Args:
        engine: The engine whose batch methods run.
        gpu: PyBlaze's ``gpu=`` argument.
        callbacks: PyBlaze and Lightning callbacks, in any order.
        trainer_kwargs: Further Trainer options.
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
            raise ValueError(f"Expected runner to be one of {RUNNERS}. Received: {runner!r}.")
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
        self.lean = False
        self.context: Any = _Context(self)
        self.history = History()
        self.metrics = MetricSet()
        self.optimizers: list[torch.optim.Optimizer] = []
        self.train_kwargs: dict[str, Any] = {}
        self.eval_kwargs: dict[str, Any] = {}
        self.predict_kwargs: dict[str, Any] = {}
        self.stop_on_nonfinite = True
        self.trainer: Any = None
        self.module: Any = None
        self.own_steps = False  # a LightningModule trained by its own training_step
        self.interrupts = InterruptGuard()
        self.predictions: list[Any] = []
        self.values: dict[str, torch.Tensor] = {}  # this epoch's validation values
        self.collated: list[Any] | None = None  # eval outputs kept for the engine's collate_*
        self._losses: list[torch.Tensor] = []
        self._losses_final = False
        self._pending: dict[str, Any] | None = None
        self._logged_before: dict[str, Any] = {}  # callback_metrics when the epoch started
        self._resumed: dict[str, Any] | None = None  # this rank's state from a checkpoint
        self._resumed_epoch: int | None = None  # the epoch a checkpoint interrupted mid-way
        # PyBlaze's model modes at its hooks (see nn/callbacks/_modes.py)
        self.user_training = getattr(self.model, "training", None)
        self.validated = False  # the current (or last) epoch ran validation: eval mode

    @functools.cached_property
    def pl(self) -> ModuleType:
        """The Lightning namespace of the call (imported on first use: the lean runner never
        needs it)."""
        return namespace.load(self.package)

    def _choose_runner(self, ckpt_path: object = None) -> None:
        """The lean runner when the call needs nothing of the Trainer (see lean.py), else the
        Trainer; ``runner='lean'`` for a call that needs the Trainer is refused."""
        runner = default_runner() if self.runner == "auto" else self.runner
        needs = [
            (bool(self.lightning_callbacks), "Lightning callbacks"),
            (bool(self.user_options), "trainer_kwargs"),
            (ckpt_path is not None, "ckpt_path"),
            (self.own_steps, "a LightningModule trained by its own training_step"),
            (self.datamodule, "a LightningDataModule"),
            (self.devices.accelerator != "cpu" and len(self.devices.devices) != 1, "gpu=[...]"),
            (self.devices.accelerator == "cpu" and self.devices.devices != 1, "several devices"),
        ]
        reasons = [what for needed, what in needs if needed]
        if runner == "lean" and reasons and self.runner == "lean":
            raise ValueError(
                f"Expected a call that the lean runner can run (one device, full precision, no "
                f"Trainer features). Received: {', '.join(reasons)}. Use runner='auto' or "
                f"runner='trainer'."
            )
        self.lean = runner != "trainer" and not reasons
        if self.lean:
            from pyblaze_pl._lightning.lean import LeanContext

            self.context = LeanContext(self)

    def _new_trainer(self, **options: Any) -> Any:
        if not self.lean:
            trainer_options = with_atomic_checkpoints(self.pl, self._trainer_options(**options))
            with quiet():  # the Trainer logs its device banners when it is built
                return self.pl.Trainer(**trainer_options)
        from pyblaze_pl._lightning.lean import LeanModule, LeanTrainer

        index = self.devices.devices[0] if self.devices.accelerator != "cpu" else None
        device = torch.device("cpu") if index is None else torch.device("cuda", index)
        self.module = LeanModule(device)
        return LeanTrainer(_Hooks(self), device, options.get("max_epochs"))

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
    ) -> History:
        """Trains: ``Trainer.fit`` on the adapter module (or the user's LightningModule)."""
        self.metrics = metrics
        self.train_kwargs = train_kwargs or {}
        self.eval_kwargs = eval_kwargs or {}
        self.stop_on_nonfinite = stop_on_nonfinite
        self.epochs = epochs
        self.own_steps = self.engine.trains_itself
        ckpt_path = data.resolve_ckpt_path(ckpt_path)
        checkpoint = None
        if ckpt_path is not None and ckpt_path not in data.SPECIAL_CKPT:
            checkpoint = check_checkpoint(ckpt_path)  # before Lightning loads it (older: unsafely)
        options: dict[str, Any] = {"max_epochs": epochs}
        self._choose_runner(ckpt_path)
        if self.own_steps:
            self.module = self.model
            options["accumulate_grad_batches"] = accumulate_grad_batches
        elif not self.lean:
            self.module = adapter_class(self.pl)(self)
            self.optimizers = _optimizers(self.train_kwargs.values())
            self.context.clip = {
                k: self.user_options.pop(k) for k in _CLIP_KEYS if k in self.user_options
            }
        self.trainer = self._new_trainer(**options)
        if checkpoint is not None:
            hooks = next(c for c in self.trainer.callbacks if isinstance(c, _Hooks))
            resume.check_checkpoint(
                checkpoint,
                ckpt_path,
                self.module,
                train_data,
                hooks.state_key,
                self.pl.__version__ if compat.restarts_epochs(self.trainer) else None,
            )
        start = time.monotonic()
        with ExitStack() as stack:
            self._enter(stack)
            if self.own_steps:
                stack.callback(
                    compat.run_after_module_hook(self.module, "on_train_epoch_end", self.end_epoch)
                )
            with compat.interrupt_returns(self.trainer):
                fit_options = compat.fit_options(self.trainer.fit, ckpt_path)
                sources = data.fit_sources(self, train_data, val_data)
                self.trainer.fit(self.module, *sources, **fit_options)
        self.history.duration += time.monotonic() - start
        return self.history

    def evaluate(self, loader: Any, metrics: MetricSet, kwargs: dict[str, Any]) -> Evaluation:
        """Computes ``metrics`` over ``data``: ``Trainer.validate`` on the adapter module."""
        self.metrics = metrics
        self.eval_kwargs = kwargs
        self._set_up("validation_step")
        with ExitStack() as stack:
            self._enter(stack)
            args, sources = data.sources(loader)
            logged = self.trainer.validate(self.module, *args, **sources, verbose=False)
        values = {k: float(v) for k, v in (logged[0] if self.own_steps and logged else {}).items()}
        values.update(zip(self.values, to_host(list(self.values.values())), strict=True))
        return Evaluation(values)

    def predict(self, loader: Any, kwargs: dict[str, Any]) -> Any:
        """The engine's outputs for every batch, in loader order, on the CPU."""
        self.predict_kwargs = kwargs
        self._set_up("predict_step")
        with ExitStack() as stack:
            self._enter(stack)
            args, sources = data.sources(compat.predict_loader(loader, self.trainer.world_size))
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
        if not self.lean:
            self.module = self.model if self.own_steps else adapter_class(self.pl)(self)
        self.trainer = self._new_trainer()

    def _enter(self, stack: ExitStack) -> None:
        stack.callback(destroy_process_group_at_exit)  # DDP: exit cleanly (see there)
        if not self.lean:
            stack.enter_context(quiet())
            stack.enter_context(features.show_requested_output(self))
        stack.enter_context(fast_cuda_checks(self.devices))
        stack.enter_context(self.interrupts)

    def _trainer_options(self, **options: Any) -> dict[str, Any]:
        """PyBlaze-like defaults, ``gpu=``, then the user's ``trainer_kwargs`` (checked against
        the PyBlaze arguments they would contradict)."""
        user = self.user_options
        for key, argument in _RESERVED.items():
            if key in user:
                value = user[key]
                listed = key == "callbacks" and isinstance(value, (list, tuple))
                shown = f"<a {type(value).__name__} of {len(value)}>" if listed else repr(value)
                raise ValueError(
                    f"Expected trainer_kwargs without {key!r}: pyblaze_pl sets it from "
                    f"`{argument}`. Received: trainer_kwargs[{key!r}]={shown}."
                )
        if "devices" in user and self.devices.accelerator != "cpu":
            raise ValueError(
                f"Expected trainer_kwargs['devices'] only together with gpu=False (the number of "
                f"CPU processes). Received: devices={user['devices']!r} with gpu={self.gpu!r}; "
                f"choose GPUs with `gpu=` instead."
            )
        lightning = [c for c in self.lightning_callbacks if not isinstance(c, self.pl.Callback)]
        if lightning:
            raise _not_a_callback(lightning[0])
        _check_trainer_keys(self.pl, user)
        callbacks = [_hooks_class(self.pl)(self), *self.lightning_callbacks]
        options = {
            "logger": False,
            "enable_checkpointing": any(
                isinstance(c, self.pl.callbacks.Checkpoint) for c in callbacks
            ),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            **self.devices.as_trainer_kwargs(),
            **options,
            **user,
            "callbacks": callbacks,
        }
        return features.prepare(self, options, fit="max_epochs" in options)

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
            epoch = self.trainer.current_epoch
            new = explain_batch_error(e, self.engine, batch, batch_idx, epoch, self.train_kwargs)
            if new is None or new is e:
                raise
            raise new from e
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

    def eval_batch(self, batch: Any) -> Any:
        return self.engine.eval_batch(batch, **self.eval_kwargs)

    def predict_batch(self, batch: Any) -> Any:
        return self.engine.predict_batch(batch, **self.predict_kwargs)

    # the epoch
    def start_epoch(self) -> None:
        trainer = self.trainer
        if features.is_extra_epoch(self) or self._restarted_again():
            return
        self._flush_pending()
        resumed, self._resumed = self._resumed, None
        if resumed is not None:  # the checkpoint was written before its epoch was recorded
            resume.restore_rng(resumed["rng"])
        self._losses = []
        self._losses_final = False
        self.values = {}
        self._logged_before = compat.metrics_snapshot(trainer) if self.own_steps else {}
        self.context.num_iterations = _count(trainer.num_training_batches)
        with self.pyblaze_mode():
            stop = self.dispatch.before_epoch(trainer.current_epoch, self.context.num_iterations)
        if stop:
            trainer.should_stop = True
        else:
            self.validated = False
        self._sync_stop()

    def add_batch_loss(self, outputs: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor) or features.is_extra_epoch(self):
            return  # training_step returned None: the batch was skipped
        loss = loss.detach()
        if self.own_steps and self.trainer.accumulate_grad_batches != 1:
            loss = loss * self.trainer.accumulate_grad_batches  # Lightning divided it
        self._losses.append(loss)
        self.dispatch.after_batch(loss)
        total = self.context.num_iterations
        if self.trainer.is_last_batch or (total is not None and len(self._losses) >= total):
            self._finalize_losses()

    def _finalize_losses(self) -> None:
        """Once per epoch, after its last batch: the rank average of every batch's loss."""
        if self._losses_final or not self._losses:
            return
        self._losses_final = True
        trainer = self.trainer
        if trainer.world_size > 1:  # one entry per step, rank average
            equal_counts(trainer, len(self._losses))
            reduced = trainer.strategy.reduce(torch.stack(self._losses), reduce_op="mean")
            self._losses = list(reduced)

    def train_loss(self) -> torch.Tensor | None:
        """The mean of this epoch's batch losses so far (for Lightning callbacks and loggers)."""
        if not self._losses:
            return None
        return torch.stack(self._losses).float().mean()

    def end_epoch(self) -> None:
        """Records the epoch, hands the record to the PyBlaze callbacks and applies the stops."""
        if not self.own_steps and not self.lean:
            features.step_epoch_schedulers(self.trainer)
        self._flush_pending()
        if not self._losses:  # stopped before the first batch
            return
        self._finalize_losses()
        values = self.values if not self.own_steps else self._logged_values()
        numbers = to_host([torch.stack(self._losses), *values.values()])
        micro, rest = numbers[: len(self._losses)], numbers[len(self._losses) :]
        self._losses = []
        self._append(micro, dict(zip(values, rest, strict=True)))

    def _logged_values(self) -> dict[str, torch.Tensor]:
        """The scalar epoch-level values the module has logged in this epoch (``*_step`` values
        left out): a value it did not log in this epoch is NaN in the History."""
        return {
            name: value
            for name, value in compat.logged_since(self.trainer, self._logged_before).items()
            if isinstance(value, torch.Tensor) and value.numel() == 1 and not name.endswith("_step")
        }

    def _append(self, micro: list[float], values: dict[str, float]) -> None:
        record = {"micro_train_loss": micro, "train_loss": math.fsum(micro) / len(micro), **values}
        self.history._metrics.append(record)
        summary = Evaluation({k: v for k, v in record.items() if k != "micro_train_loss"})
        with self.pyblaze_mode():
            stop = self.dispatch.after_epoch(summary)
        if stop:
            self.trainer.should_stop = True
        bad = next((i for i, loss in enumerate(micro) if not math.isfinite(loss)), None)
        if self.stop_on_nonfinite and bad is not None:
            self.dispatch.stop(
                CallbackException(
                    f"Stopping: the training loss became {micro[bad]} in epoch "
                    f"{len(self.history)} (batch {bad + 1} of {len(micro)}). Pass "
                    f"stop_on_nonfinite=False to train on."
                )
            )
            self.trainer.should_stop = True
        # Every rank sees the same History; a callback that decides otherwise stops them all.
        self._sync_stop()

    def pyblaze_mode(self) -> Any:
        """PyBlaze's model mode for a training hook: eval after an epoch with validation."""
        return model_mode(self.model, False if self.validated else None)

    def update_collated(self) -> None:
        """PyBlaze v1: metrics receive ``collate_predictions``/``collate_targets`` of all the
        evaluation's outputs (only when the engine overrides them; else they stream)."""
        outputs, self.collated = self.collated, None
        if outputs:
            y_pred = self.engine.collate_predictions([output[0] for output in outputs])
            y_true = self.engine.collate_targets([output[1] for output in outputs])
            self.metrics.update(y_pred, y_true)

    def _sync_stop(self) -> None:
        """Several processes (DDP): if one stops, all stop, at the same epoch."""
        trainer = self.trainer
        if trainer.world_size == 1:
            return
        stop = trainer.strategy.reduce_boolean_decision(bool(trainer.should_stop), all=False)
        if stop:
            self.dispatch.stop(CallbackException("Training stopped: another process asked to."))
        trainer.should_stop = stop

    # resuming: an epoch whose batches ran but which was not recorded when a checkpoint was written
    def state_dict(self) -> dict[str, Any]:
        epoch = self._pending
        if self._losses_final and self._losses:
            values = self.values if not self.own_steps else {}
            numbers = to_host([torch.stack(self._losses), *values.values()])
            micro, rest = numbers[: len(self._losses)], numbers[len(self._losses) :]
            epoch = {"micro": micro, "values": dict(zip(values, rest, strict=True))}
        return {
            "duration": self.history.duration,
            "metrics": self.history._metrics,
            "epoch": epoch,
            **resume.rank_states(
                self.trainer,
                [] if self._losses_final else to_host(self._losses),
                None if self._resumed is None else self._resumed["rng"],  # not restored yet
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = History(state["duration"], state["metrics"])
        self._pending = state.get("epoch", state.get("pending"))
        self._resumed = resume.load_rank_state(
            self.trainer,
            state,
            self._pending is not None,
            compat.restarts_epochs(self.trainer),
        )

    def resume_mid_epoch(self) -> None:
        """Continues an epoch that a checkpoint interrupted: its batch losses so far, then the
        random number generators as they were after its last batch."""
        resumed = self._resumed
        if not resumed or not resumed["partial"]:
            return
        self._resumed = None
        self.start_epoch()
        self._resumed_epoch = self.trainer.current_epoch
        device = self.module.device
        self._losses = [
            torch.tensor(v, dtype=torch.float64, device=device) for v in resumed["partial"]
        ]
        resume.restore_rng(resumed["rng"])

    def _restarted_again(self) -> bool:
        """Whether ``on_train_epoch_start`` announces an epoch that a resumed run already is in
        (Lightning 2.4 calls it on resuming for the epoch a checkpoint interrupted; 2.5 and later
        do not): the epoch resumed mid-way, or the epoch whose record a checkpoint written when
        validation ended holds (it is validated again and then recorded by :meth:`end_epoch`)."""
        epoch = self.trainer.current_epoch
        resumed, self._resumed_epoch = self._resumed_epoch, None
        return epoch == resumed or (self._pending is not None and epoch == len(self.history))

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if "micro" not in pending:  # written by release 0.1.0: a complete record
            pending = {
                "micro": pending["micro_train_loss"],
                "values": {
                    k: v for k, v in pending.items() if k not in ("micro_train_loss", "train_loss")
                },
            }
        self._append(pending["micro"], pending["values"])


class _Context(batch_context.BatchContext):
    """The batch context of a run: backward and optimizer steps through Lightning."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run
        self.clip: dict[str, Any] = {}
        self._wrapped: dict[int, Any] = {}

    def start(self) -> None:
        module = self.run.module
        self.device = module.device
        if not self.run.own_steps and self.run.trainer.state.fn == "fit":
            optimizers = module.optimizers(use_pl_optimizer=True)
            optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
            self._wrapped = {id(o.optimizer): o for o in optimizers if o is not None}

    def backward(self, loss: torch.Tensor) -> None:
        if not features.is_extra_epoch(self.run):  # SWA's batch-norm pass only runs forward
            self.run.module.manual_backward(loss)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        run = self.run
        if features.is_extra_epoch(run):
            return
        run.interrupts.begin()  # Ctrl-C never leaves a half-applied update
        wrapped = self._wrapped.get(id(optimizer))
        if self.clip.get("gradient_clip_val") is not None:
            run.module.clip_gradients(wrapped or optimizer, **self.clip)
        if wrapped is not None:
            wrapped.step()  # counts Lightning's global_step
        else:  # not passed to fit: still through the precision plugin (GradScaler, ...)
            run.trainer.strategy.optimizer_step(optimizer, closure=_no_closure, model=run.module)
        optimizer.zero_grad()
        run.interrupts.end()


def _no_closure() -> None:
    return None


class _Hooks:
    """The run's one Lightning callback: forwards Lightning's hooks to the :class:`Run`."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._token: Any = None
        self._logged_epoch: int | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.run.trainer = trainer
        self._token = batch_context.publish(self.run.context)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._token is not None:
            batch_context.withdraw(self._token)
            self._token = None

    # training
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.run.context.start()
        self.run.metrics.to(pl_module.device)
        self.run.dispatch.before_training(self.run.epochs)
        self.run.resume_mid_epoch()  # Lightning calls no on_train_epoch_start for that epoch

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.run.start_epoch()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, *args: Any) -> None:
        self.run.add_batch_loss(outputs)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_train_loss(pl_module)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.run._flush_pending()
        with self.run.pyblaze_mode():
            self.run.dispatch.after_training(prints=trainer.is_global_zero)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.run.dispatch.close()
        if isinstance(exception, KeyboardInterrupt):
            self.run.dispatch.stop(
                Interrupted(
                    f"Training interrupted (KeyboardInterrupt) in epoch "
                    f"{trainer.current_epoch + 1}; returning the History of the completed epochs."
                )
            )
            self.run.dispatch.after_training(prints=trainer.is_global_zero)

    def _log_train_loss(self, pl_module: Any) -> None:
        run = self.run
        if run.own_steps or run.lean or self._logged_epoch == run.trainer.current_epoch:
            return
        mean = run.train_loss()
        if mean is not None:
            self._logged_epoch = run.trainer.current_epoch
            pl_module.log("train_loss", mean, sync_dist=run.trainer.world_size > 1)

    # validation, evaluate and predict
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not _ignored(self.run, trainer):
            self.run.metrics.to(pl_module.device)
            self.run.metrics.start(unpadded_samples(trainer))  # DDP: count no sample twice
            self.run.collated = [] if self.run.engine.collates_evaluations() else None
            fitting = trainer.state.fn == "fit"  # PyBlaze: before model.eval()
            with model_mode(self.run.model, True if fitting else self.run.user_training):
                self.run.dispatch.before_predictions(_count(trainer.num_val_batches))
        if trainer.state.fn != "fit":
            self.run.context.start()

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *args: Any
    ) -> None:
        if _ignored(self.run, trainer):
            return
        run = self.run
        if len(run.metrics):
            output = run.engine.eval_batch(batch) if run.own_steps else outputs
            if run.collated is not None:
                run.collated.append(map_tensors(output, torch.Tensor.detach))
            else:
                run.metrics.update(*output)
        run.dispatch.after_prediction_batch()

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if _ignored(self.run, trainer):
            return
        run = self.run
        run.update_collated()
        values = run.metrics.compute()
        if trainer.state.fn == "fit":
            run.validated = True
            values = {f"val_{k}": v for k, v in values.items()}
            if not run.lean:  # for Lightning callbacks and loggers
                # Those that act when validation ends (ModelCheckpoint) see train_loss too.
                if run._losses_final:
                    self._log_train_loss(pl_module)
                distributed = trainer.world_size > 1  # values are global already
                for name, value in values.items():
                    pl_module.log(name, value.float(), sync_dist=distributed)
        run.values = values

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not _ignored(self.run, trainer):
            self.run.dispatch.after_predictions()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.run.context.start()
        self.run.dispatch.before_predictions(_count(trainer.num_predict_batches))

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, *args: Any) -> None:
        self.run.predictions.append(map_tensors(outputs, _on_cpu))
        self.run.dispatch.after_prediction_batch()

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.run.dispatch.after_predictions()

    # checkpoints: the History so far and the PyBlaze callbacks' state
    def state_dict(self) -> dict[str, Any]:
        return {**self.run.state_dict(), "callbacks": self.run.dispatch.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.run.load_state_dict(state_dict)
        self.run.dispatch.load_state_dict(state_dict.get("callbacks", {}))


def _ignored(run: Run, trainer: Any) -> bool:
    """Validation that is not PyBlaze's: sanity checks, and after SWA's batch-norm pass."""
    fit = trainer.state.fn == "fit"
    return trainer.sanity_checking or (fit and features.is_extra_epoch(run))


class Interrupted(CallbackException):
    """Why training ended after Ctrl-C (printed to standard error)."""

    to_stderr = True


@functools.cache
def _hooks_class(pl: ModuleType) -> type:
    """The run's callback class for the Lightning namespace ``pl``."""
    return type("RunHooks", (_Hooks, pl.Callback), {"__module__": __name__})
