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
from pyblaze_pl.nn.engine._distributed import equal_counts
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
    """Whether the current training epoch has run (or is running) its last batch."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return progress.is_last_batch or progress.current.ready >= trainer.num_training_batches


class HistoryRecorder(pl.Callback):
    """Collects each batch's loss (detached, on the device) and, at the end of every epoch, the
    epoch's metrics; appends one record per epoch to :attr:`history` and hands the record to
    the PyBlaze callbacks' ``after_epoch``.

    The epoch is recorded right after the LightningModule's own ``on_train_epoch_end`` (see
    :meth:`after_module_epoch_end`), so that everything the module logs is included, and before
    Lightning's monitoring callbacks (ModelCheckpoint, EarlyStopping) act.

    Its state (the History, and an epoch whose training and validation ended but which was not
    recorded yet when a checkpoint was written) is saved in Lightning checkpoints, so a run
    resumed with ``ckpt_path`` continues the same History.

    Args:
        bridge: The bridge whose ``after_epoch`` receives each record.
        collect: Returns the epoch's other metrics (validation), as tensors.
        log_train_loss: Whether to log ``train_loss`` for Lightning callbacks and loggers.
        loss_scale: Factor that turns the losses in ``training_step`` outputs into each batch's
            own loss (Lightning divides them by ``accumulate_grad_batches``).
        stop_on_nonfinite: Whether to stop training at the end of an epoch in which a batch loss
            was NaN or infinite.
    """

    def __init__(
        self,
        bridge: PyBlazeBridge,
        collect: Callable[[], dict[str, Any]],
        log_train_loss: bool = True,
        loss_scale: float = 1.0,
        stop_on_nonfinite: bool = True,
    ) -> None:
        self.bridge = bridge
        self.collect = collect
        self.log_train_loss = log_train_loss
        self.loss_scale = loss_scale
        self.stop_on_nonfinite = stop_on_nonfinite
        self.history = History()
        self._trainer: pl.Trainer | None = None
        self._losses: list[torch.Tensor] = []
        self._logged = False
        self._recorded = False
        self._pending: dict[str, Any] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:  # resumed from a checkpoint written before epoch end
            pending, self._pending = self._pending, None
            self._append(trainer, pending)
        self._losses = []
        self._logged = False
        self._recorded = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any
    ) -> None:
        loss = batch_loss(outputs)
        if loss is not None:
            self._losses.append(loss.detach())

    def _log_train_loss(self, pl_module: pl.LightningModule) -> None:
        if self.log_train_loss and self._losses and not self._logged:
            self._logged = True
            mean = self.loss_scale * torch.stack(self._losses).float().mean()
            pl_module.log("train_loss", mean, sync_dist=pl_module.trainer.world_size > 1)

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
        if self._losses and not self._recorded:  # else: stopped before the first batch
            self._recorded = True
            self._append(trainer, self._record())

    def _record(self) -> dict[str, Any]:
        """The epoch's record, with one device-to-host transfer."""
        metrics = self.collect()
        losses = torch.stack(self._losses)
        if self.loss_scale != 1:
            losses = losses * self.loss_scale
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:  # one entry per step, rank average
            equal_counts(trainer, len(losses))
            losses = trainer.strategy.reduce(losses, reduce_op="mean")
        values = to_host([losses, *metrics.values()])
        micro, rest = values[: len(self._losses)], values[len(self._losses) :]
        return {
            "micro_train_loss": micro,
            "train_loss": math.fsum(micro) / len(micro),  # unless the module logged its own
            **dict(zip(metrics, rest, strict=True)),
        }

    def _append(self, trainer: pl.Trainer, record: dict[str, Any]) -> None:
        self.history._metrics.append(record)
        summary = {k: v for k, v in record.items() if k != "micro_train_loss"}
        self.bridge.after_epoch(trainer, Evaluation(summary))
        if self.stop_on_nonfinite:
            micro = record["micro_train_loss"]
            bad = next((i for i, loss in enumerate(micro) if not math.isfinite(loss)), None)
            if bad is not None:
                self.bridge.request_stop(
                    trainer,
                    f"Stopping: the training loss became {micro[bad]} in epoch "
                    f"{len(self.history)} (batch {bad + 1} of {len(micro)}). Pass "
                    f"stop_on_nonfinite=False to train on.",
                )
        # Every rank sees the same History; a callback that decides otherwise stops them all.
        self.bridge.sync_stop(trainer)

    def state_dict(self) -> dict[str, Any]:
        pending = None
        trainer = self._trainer
        unrecorded = self._losses and not self._recorded and trainer is not None
        if unrecorded and training_epoch_complete(trainer):
            pending = self._record()
        return {
            "duration": self.history.duration,
            "metrics": self.history._metrics,
            "pending": pending,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = History(state_dict["duration"], state_dict["metrics"])
        self._pending = state_dict["pending"]


class _ThenFinishEpoch:
    """``module.on_train_epoch_end``, then the recorder's ``finish_epoch`` (picklable)."""

    def __init__(self, hook: Callable[[], None], recorder: HistoryRecorder) -> None:
        self.hook = hook
        self.recorder = recorder

    def __call__(self) -> None:
        self.hook()
        self.recorder.finish_epoch(self.hook.__self__.trainer)
