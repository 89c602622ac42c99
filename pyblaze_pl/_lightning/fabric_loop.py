"""The Fabric runner: a call's loop on Lightning Fabric, for calls that need nothing of the Trainer.

Fabric owns the device (``fabric.to_device``), precision (``fabric.autocast``), the loaders
(``fabric.setup_dataloaders``: worker seeding, ``DistributedSampler.set_epoch``, moving batches),
backward (``fabric.backward``) and optimizer steps (``fabric.strategy.optimizer_step``); this
module only orders the calls. It drives the same :class:`~pyblaze_pl._lightning.run.Run` through
the same hook methods as Lightning's Trainer (:class:`~pyblaze_pl._lightning.hooks.Hooks`), in the
same order and with the same reads of the data: a loader with a length is not read ahead, one
without is read one batch ahead (as the Trainer's data fetcher). Both runners therefore share the
engine, the History, the PyBlaze callback dispatch and the metrics, and give the same numbers.

What it leaves out, against the Trainer: the loop bookkeeping (progress tracking, hook dispatch
over every callback, result collections, logging) and Fabric's module and optimizer wrappers
(the engine calls the model and the optimizers it was given; the model is never wrapped).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from pyblaze_pl._lightning import compat
from pyblaze_pl._lightning.context import BatchContext
from pyblaze_pl._lightning.interrupts import Terminated
from pyblaze_pl._lightning.quiet import quiet
from pyblaze_pl._signals import deferred_sigint
from pyblaze_pl.nn.callbacks._modes import model_mode

if TYPE_CHECKING:
    from pyblaze_pl._lightning.run import Run

# The Fabric package of each Trainer namespace.
_FABRIC = {"pytorch_lightning": "lightning_fabric", "lightning": "lightning.fabric"}
# Precision values the Fabric runner takes (others, such as "16-true", go to the Trainer).
PRECISIONS = ("32-true", "32", 32, "bf16-mixed", "16-mixed")


def new_fabric(package: str, accelerator: str, devices: Any, precision: Any) -> Any:
    """A one-device Fabric of the namespace ``package`` (``pytorch_lightning`` or ``lightning``).

    Built once per configuration and process and shared by the calls: building one reads every
    installed package's entry points (about 13 ms), and a one-device Fabric keeps no state of a
    call. ``16-mixed`` is the exception: its gradient scaler learns a scale during a call, so
    each call gets a Fabric of its own, as each Trainer has its own scaler.
    """
    key = tuple(devices) if isinstance(devices, list) else devices
    if str(precision) == "16-mixed":
        return _build_fabric(package, accelerator, key, precision)
    return _shared_fabric(package, accelerator, key, precision)


def _build_fabric(package: str, accelerator: str, devices: Any, precision: Any) -> Any:
    with deferred_sigint():  # a Ctrl-C mid-import would break every later call
        fabric = importlib.import_module(_FABRIC[package])
    devices = list(devices) if isinstance(devices, tuple) else devices
    with quiet():
        return fabric.Fabric(accelerator=accelerator, devices=devices, precision=precision)


_shared_fabric = functools.lru_cache(maxsize=8)(_build_fabric)


def _length(data: Iterable) -> float:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return math.inf


def _with_last(iterable: Iterable) -> Iterator[tuple[Any, bool]]:
    """Yields ``(item, is_last)``: by the length where there is one (nothing is read ahead), else
    reading one item ahead (as Lightning's data fetchers)."""
    size = _length(iterable)
    if math.isfinite(size):  # never a next() past the last batch (it may draw random numbers)
        for index, item in enumerate(itertools.islice(iterable, int(size))):
            yield item, index + 1 >= size
        return
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


class FabricModule:
    """What the run's hooks read of the module on the Fabric runner: its device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device


class FabricContext(BatchContext):
    """Backward and optimizer steps through Fabric; Ctrl-C still waits for a step to end."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def start(self) -> None:
        self.device = self.run.module.device

    def backward(self, loss: torch.Tensor) -> None:
        self.run.trainer.fabric.backward(loss)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        interrupts = self.run.interrupts
        interrupts.begin()
        self.run.trainer.fabric.strategy.optimizer_step(optimizer)
        optimizer.zero_grad()
        interrupts.end()


class FabricLoop:
    """The part of the Trainer's interface a run uses, with Fabric behind ``fit``, ``validate``
    and ``predict``.

    Args:
        hooks: The run's hook object (the same class the Trainer calls as a callback).
        fabric: The call's Fabric (one device).
        max_epochs: The number of epochs of ``fit``.
    """

    world_size = 1
    is_global_zero = True
    sanity_checking = False
    accumulate_grad_batches = 1
    strategy = None
    received_sigterm = False
    callback_metrics: dict[str, Any] = {}  # noqa: RUF012 - never written (no logging here)

    def __init__(self, hooks: Any, fabric: Any, max_epochs: int | None = None) -> None:
        self.hooks = hooks
        self.fabric = fabric
        self.device = fabric.device
        self.max_epochs = max_epochs
        self.state = _State()
        self.should_stop = False
        self.current_epoch = 0
        self.is_last_batch = False
        self.num_training_batches: float = 0
        self.num_val_batches: float = 0
        self.num_predict_batches: float = 0
        self.val_dataloaders: Any = None
        self._loaders: list[Any] = []  # the DataLoaders of the call, shut down when it ends

    # loaders
    def _setup(self, data: Iterable) -> Iterable:
        """``data`` set up by Fabric: a DataLoader through ``setup_dataloaders`` (worker seeding,
        sampler epochs, batches moved to the device), any other iterable moved batch by batch."""
        on_device = self.device.type != "cpu"
        if isinstance(data, torch.utils.data.DataLoader):
            self._loaders.append(data)
            return self.fabric.setup_dataloaders(data, move_to_device=on_device)
        return _OnDevice(data, self.fabric) if on_device else data

    def _check_terminated(self) -> None:
        if self.hooks.run.interrupts.terminated:
            self.received_sigterm = True
            raise Terminated(self.state.fn)

    # the three calls
    def fit(self, module: FabricModule, train_data: Iterable, val_data: Iterable | None) -> None:
        self.state.fn = "fit"
        train = self._setup(train_data)
        val = None if val_data is None else self._setup(val_data)
        self._call(module, "fit", self._fit_loop, module, train, val)

    def _fit_loop(self, module: FabricModule, train_data, val_data) -> None:
        hooks, run = self.hooks, self.hooks.run
        hooks.on_train_start(self, module)
        self.num_training_batches = _length(train_data)
        while self.current_epoch < self.max_epochs and not self.should_stop:
            hooks.on_train_epoch_start(self, module)
            if not self.should_stop:
                autocast = self.fabric.autocast
                for batch_idx, (batch, last) in enumerate(_with_last(train_data)):
                    self.is_last_batch = last
                    with autocast():
                        loss = run.train_batch(batch, batch_idx)
                    hooks.on_train_batch_end(self, module, loss, batch, batch_idx)
                    self._check_terminated()
                    if self.should_stop:
                        break
                if val_data is not None and run.validates(self.current_epoch):
                    with model_mode(run.model, False):  # then every submodule's own mode again
                        self._evaluate(module, val_data)
            hooks.on_train_epoch_end(self, module)
            run.end_epoch()  # where the Trainer calls the adapter's on_train_epoch_end
            self.current_epoch += 1
        hooks.on_train_end(self, module)

    def validate(self, module: FabricModule, data: Iterable, verbose: bool = False) -> None:
        self.state.fn = "validate"
        self._call(module, "validate", self._validate_loop, module, self._setup(data))

    def _validate_loop(self, module: FabricModule, data: Iterable) -> None:
        with model_mode(self.hooks.run.model, False):
            self._evaluate(module, data)

    def _evaluate(self, module: FabricModule, data: Iterable) -> None:
        hooks, run = self.hooks, self.hooks.run
        self.val_dataloaders = data
        self.num_val_batches = _length(data)
        hooks.on_validation_start(self, module)
        with torch.inference_mode():
            for batch_idx, (batch, _) in enumerate(_with_last(data)):
                with self.fabric.autocast():  # as a validation_step (the hook: its own)
                    outputs = run.eval_batch(batch, batch_idx)
                hooks.on_validation_batch_end(self, module, outputs, batch, batch_idx)
                self._check_terminated()
        hooks.on_validation_epoch_end(self, module)
        hooks.on_validation_end(self, module)

    def predict(
        self, module: FabricModule, data: Iterable, return_predictions: bool = False
    ) -> None:
        self.state.fn = "predict"
        self._call(module, "predict", self._predict_loop, module, self._setup(data))

    def _predict_loop(self, module: FabricModule, data: Iterable) -> None:
        hooks, run = self.hooks, self.hooks.run
        self.num_predict_batches = _length(data)
        with model_mode(run.model, False):
            hooks.on_predict_start(self, module)
            with torch.inference_mode():
                for batch_idx, (batch, _) in enumerate(_with_last(data)):
                    with self.fabric.autocast():
                        outputs = run.predict_batch(batch, batch_idx)
                    hooks.on_predict_batch_end(self, module, outputs, batch, batch_idx)
                    self._check_terminated()
            hooks.on_predict_end(self, module)

    def _call(self, module: FabricModule, stage: str, loop: Any, *args: Any) -> None:
        """Runs ``loop`` between ``setup`` and ``teardown``, with the model on Fabric's device.

        As on the Trainer: an exception reaches ``on_exception`` and the teardown runs; Ctrl-C
        during ``fit`` ends the call, which returns (it is raised again by ``evaluate`` and
        ``predict``); SIGTERM ends the process (:class:`~.interrupts.Terminated`). Every loader's
        worker processes are shut down, however the call ends.
        """
        hooks = self.hooks
        self.fabric.to_device(hooks.run.model)
        hooks.setup(self, module, stage)
        try:
            loop(*args)
        except BaseException as e:
            hooks.on_exception(self, module, e)
            if stage != "fit" or not isinstance(e, KeyboardInterrupt):
                raise
        finally:
            hooks.teardown(self, module, stage)
            for loader in self._loaders:
                compat.shut_down_workers(loader)
            if self.device.type != "cpu":  # as the Trainer: the model ends on the CPU
                hooks.run.model.cpu()


class _OnDevice:
    """An iterable of batches that are not from a DataLoader, moved to Fabric's device."""

    def __init__(self, data: Iterable, fabric: Any) -> None:
        self.data = data
        self.fabric = fabric

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        to_device = self.fabric.to_device
        for batch in self.data:
            yield to_device(batch)
