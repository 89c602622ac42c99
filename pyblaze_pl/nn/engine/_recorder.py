"""Records the History: per-batch losses stay on the device, and each epoch's numbers reach the
host in one transfer."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch

from pyblaze_pl.nn.callbacks._bridge import PyBlazeBridge, batch_loss
from pyblaze_pl.nn.results import Evaluation, History


def to_host(tensors: Sequence[torch.Tensor]) -> list[float]:
    """All values of ``tensors`` as Python floats, with a single device-to-host transfer."""
    if not tensors:
        return []
    device = tensors[0].device
    dtype = torch.float32 if device.type == "mps" else torch.float64
    flat = [t.detach().reshape(-1).to(device=device, dtype=dtype) for t in tensors]
    return torch.cat(flat).tolist()


def training_epoch_complete(trainer: pl.Trainer) -> bool:
    """Whether the current training epoch has run its last batch."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return progress.is_last_batch or progress.current.ready >= trainer.num_training_batches


class HistoryRecorder(pl.Callback):
    """Collects each batch's loss (detached, on the device) and, at the end of every epoch, the
    epoch's metrics; appends one record per epoch to :attr:`history` and hands the record to
    the PyBlaze callbacks' ``after_epoch``.

    The epoch is recorded right after the LightningModule's own ``on_train_epoch_end`` (see
    :meth:`after_module_epoch_end`), so that everything the module logs is included, and before
    Lightning's monitoring callbacks (ModelCheckpoint, EarlyStopping) act.

    Args:
        bridge: The bridge whose ``after_epoch`` receives each record.
        collect: Returns the epoch's other metrics (validation), as tensors.
        log_train_loss: Whether to log ``train_loss`` for Lightning callbacks and loggers.
        loss_scale: Factor that turns the losses in ``training_step`` outputs into each batch's
            own loss (Lightning divides them by ``accumulate_grad_batches``).
    """

    def __init__(
        self,
        bridge: PyBlazeBridge,
        collect: Callable[[], dict[str, Any]],
        log_train_loss: bool = True,
        loss_scale: float = 1.0,
    ) -> None:
        self.bridge = bridge
        self.collect = collect
        self.log_train_loss = log_train_loss
        self.loss_scale = loss_scale
        self.history = History()
        self._losses: list[torch.Tensor] = []
        self._logged = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._losses = []
        self._logged = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any
    ) -> None:
        loss = batch_loss(outputs)
        if loss is not None:
            self._losses.append(loss.detach())

    def _log_train_loss(self, pl_module: pl.LightningModule) -> None:
        if self.log_train_loss and self._losses and not self._logged:
            self._logged = True
            pl_module.log("train_loss", self.loss_scale * torch.stack(self._losses).float().mean())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning callbacks that act when validation ends (ModelCheckpoint) must see train_loss.
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        if fitting and training_epoch_complete(trainer):
            self._log_train_loss(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_train_loss(pl_module)

    @contextmanager
    def after_module_epoch_end(self, module: pl.LightningModule) -> Iterator[None]:
        """Makes ``module.on_train_epoch_end`` call :meth:`finish_epoch` after itself."""
        module.__dict__["on_train_epoch_end"] = _ThenFinishEpoch(module.on_train_epoch_end, self)
        try:
            yield
        finally:
            module.__dict__.pop("on_train_epoch_end", None)

    def finish_epoch(self, trainer: pl.Trainer) -> None:
        """Records the epoch and calls the PyBlaze callbacks' ``after_epoch``."""
        if not self._losses:  # stopped before the epoch's first batch
            return
        metrics = self.collect()
        losses = torch.stack(self._losses)
        if self.loss_scale != 1:
            losses = losses * self.loss_scale
        values = to_host([losses, *metrics.values()])
        micro, rest = values[: len(self._losses)], values[len(self._losses) :]
        record = {
            "train_loss": math.fsum(micro) / len(micro),  # unless the module logged its own
            **dict(zip(metrics, rest, strict=True)),
        }
        self.history._metrics.append({"micro_train_loss": micro, **record})
        self.bridge.after_epoch(trainer, Evaluation(record))


class _ThenFinishEpoch:
    """``module.on_train_epoch_end``, then the recorder's ``finish_epoch`` (picklable)."""

    def __init__(self, hook: Callable[[], None], recorder: HistoryRecorder) -> None:
        self.hook = hook
        self.recorder = recorder

    def __call__(self) -> None:
        self.hook()
        self.recorder.finish_epoch(self.hook.__self__.trainer)
