"""The lean runner: a call's loop in plain PyTorch, for calls that need nothing of the Trainer.

It drives the same :class:`~pyblaze_pl._lightning.run.Run` through the same hook methods as
Lightning's Trainer does (:class:`~pyblaze_pl._lightning.run._Hooks`), in the same order, so both
runners share the engine, the History, the PyBlaze callback dispatch and the metrics; only the
loop differs. It runs in one process on one device in full precision; the run chooses the
Trainer for everything else (Lightning callbacks or loggers, ``trainer_kwargs``, ``ckpt_path``,
several devices, LightningModule estimators, DataModules).

What it saves per training step, against the Trainer: the loop bookkeeping (progress tracking,
hook dispatch over every callback, result collections) and the optimizer wrappers. Lightning
Fabric was measured for this role and cost about 6 % more per small step than this loop (its
module and optimizer wrappers), with nothing the lean runner's calls need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from pyblaze_pl._lightning.context import BatchContext
from pyblaze_pl._tensors import map_tensors
from pyblaze_pl.nn.callbacks._modes import model_mode

if TYPE_CHECKING:
    from pyblaze_pl._lightning.run import Run


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor on ``device`` (tuples, lists and dicts are walked)."""
    if device.type == "cpu":  # loaders yield CPU tensors: nothing to move
        return batch
    return map_tensors(batch, lambda tensor: tensor.to(device, non_blocking=True))


def _length(data: Iterable) -> float:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return math.inf


def _with_last(iterable: Iterable) -> Iterator[tuple[Any, bool]]:
    """Yields ``(item, is_last)``, looking one item ahead (as Lightning's data fetcher)."""
    iterator = iter(iterable)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for upcoming in iterator:
        yield current, False
        current = upcoming
    yield current, True


class _State:
    fn: str | None = None


class LeanModule:
    """What the run's hooks read of the module on the lean runner."""

    def __init__(self, device: torch.device) -> None:
        self.device = device


class LeanContext(BatchContext):
    """Backward and optimizer steps in plain PyTorch; Ctrl-C still waits for a step to end."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def start(self) -> None:
        self.device = self.run.module.device

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        interrupts = self.run.interrupts
        interrupts.begin()
        optimizer.step()
        optimizer.zero_grad()
        interrupts.end()


class LeanTrainer:
    """The part of the Trainer's interface a run uses, with a plain loop behind ``fit``,
    ``validate`` and ``predict``.

    Args:
        hooks: The run's hook object (the same class the Trainer calls as a callback).
        device: The one device the model and batches go to.
        max_epochs: The number of epochs of ``fit``.
    """

    world_size = 1
    is_global_zero = True
    sanity_checking = False
    accumulate_grad_batches = 1
    strategy = None
    callback_metrics: dict[str, Any] = {}  # noqa: RUF012 - never written (no logging here)

    def __init__(self, hooks: Any, device: torch.device, max_epochs: int | None = None) -> None:
        self.hooks = hooks
        self.device = device
        self.max_epochs = max_epochs
        self.state = _State()
        self.should_stop = False
        self.interrupted = False
        self.current_epoch = 0
        self.is_last_batch = False
        self.num_training_batches: float = 0
        self.num_val_batches: float = 0
        self.num_predict_batches: float = 0
        self.val_dataloaders: Any = None

    def fit(self, module: LeanModule, train_data: Iterable, val_data: Iterable | None) -> None:
        hooks, run = self.hooks, self.hooks.run
        self.state.fn = "fit"
        self._call(module, "fit", self._fit_loop, module, train_data, val_data, hooks, run)

    def _fit_loop(self, module: LeanModule, train_data, val_data, hooks, run) -> None:
        model = run.model  # trained in the modes it is in, as by the Trainer
        hooks.on_train_start(self, module)
        self.num_training_batches = _length(train_data)
        while self.current_epoch < self.max_epochs and not self.should_stop:
            hooks.on_train_epoch_start(self, module)
            if not self.should_stop:
                for batch_idx, (batch, last) in enumerate(_with_last(train_data)):
                    self.is_last_batch = last
                    loss = run.train_batch(to_device(batch, self.device), batch_idx)
                    hooks.on_train_batch_end(self, module, loss, batch, batch_idx)
                    if self.should_stop:
                        break
                if val_data is not None:
                    with model_mode(model, False):  # then every submodule's own mode again
                        self._evaluate(module, val_data)
            hooks.on_train_epoch_end(self, module)
            run.end_epoch()  # where the Trainer calls the adapter's on_train_epoch_end
            self.current_epoch += 1
        hooks.on_train_end(self, module)

    def validate(self, module: LeanModule, data: Iterable, verbose: bool = False) -> None:
        self.state.fn = "validate"
        self._call(module, "validate", self._validate_loop, module, data)

    def _validate_loop(self, module: LeanModule, data: Iterable) -> None:
        with model_mode(self.hooks.run.model, False):
            self._evaluate(module, data)

    def _evaluate(self, module: LeanModule, data: Iterable) -> None:
        hooks, run = self.hooks, self.hooks.run
        self.val_dataloaders = data
        self.num_val_batches = _length(data)
        hooks.on_validation_start(self, module)
        with torch.inference_mode():
            for batch_idx, batch in enumerate(data):
                outputs = run.eval_batch(to_device(batch, self.device))
                hooks.on_validation_batch_end(self, module, outputs, batch, batch_idx)
        hooks.on_validation_epoch_end(self, module)
        hooks.on_validation_end(self, module)

    def predict(self, module: LeanModule, data: Iterable, return_predictions: bool = False) -> None:
        self.state.fn = "predict"
        self._call(module, "predict", self._predict_loop, module, data)

    def _predict_loop(self, module: LeanModule, data: Iterable) -> None:
        hooks, run = self.hooks, self.hooks.run
        self.num_predict_batches = _length(data)
        with model_mode(run.model, False):
            hooks.on_predict_start(self, module)
            with torch.inference_mode():
                for batch_idx, batch in enumerate(data):
                    outputs = run.predict_batch(to_device(batch, self.device))
                    hooks.on_predict_batch_end(self, module, outputs, batch, batch_idx)
            hooks.on_predict_end(self, module)

    def _call(self, module: LeanModule, stage: str, loop: Any, *args: Any) -> None:
        """Runs ``loop`` between ``setup`` and ``teardown``, with the model on the device; a
        KeyboardInterrupt ends the call as on the Trainer (``on_exception``, then return)."""
        hooks = self.hooks
        hooks.run.model.to(self.device)
        hooks.setup(self, module, stage)
        try:
            loop(*args)
        except KeyboardInterrupt as e:
            self.interrupted = True
            hooks.on_exception(self, module, e)
        except BaseException as e:
            hooks.on_exception(self, module, e)
            raise
        finally:
            hooks.teardown(self, module, stage)
            if self.device.type != "cpu":  # as the Trainer: the model ends on the CPU
                hooks.run.model.cpu()
