"""The epoch record of a run: batch losses, the epoch's values, the History entry, the PyBlaze
callbacks' epoch hooks and stop decisions, and the part of a checkpoint that resumes them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from pyblaze_pl._lightning import compat, features, resume
from pyblaze_pl._lightning.distributed import equal_counts
from pyblaze_pl._tensors import wide_float
from pyblaze_pl.nn.callbacks._modes import hook_mode
from pyblaze_pl.nn.callbacks.base import CallbackException
from pyblaze_pl.nn.results import Evaluation, History


def to_host(tensors: Sequence[torch.Tensor]) -> list[float]:
    """All values of ``tensors`` as Python floats, with a single device-to-host transfer."""
    if not tensors:
        return []
    device = tensors[0].device
    dtype = wide_float(device)
    flat = [t.detach().reshape(-1).to(device=device, dtype=dtype) for t in tensors]
    return torch.cat(flat).tolist()


class NonFiniteStop(CallbackException):
    """The stop on a non-finite training loss. Its message reads the weights when it is shown,
    after the callbacks' ``after_training`` (``EarlyStopping(restore_best=True)`` may have loaded
    finite weights back by then)."""

    def __init__(self, head: str, model: torch.nn.Module, callbacks: Sequence[Any]) -> None:
        super().__init__(head)
        self.head, self.model = head, model
        self.restores = any(getattr(c, "restore_best", False) for c in callbacks)
        self.was_finite = _nonfinite(model)[0] == 0

    def __str__(self) -> str:
        return f"{self.head} {self._weights()} Pass stop_on_nonfinite=False to train on."

    def _weights(self) -> str:
        bad, total = _nonfinite(self.model)
        if not bad:
            if self.was_finite:
                return "The model's weights are still finite."
            return (
                "The weights became non-finite; xnn.EarlyStopping(restore_best=True) loaded "
                "finite ones back, of the best epoch or from before training "
                "(history.restored_epoch says which)."
            )
        if self.restores:  # its metric was not computed in the last epoch, or had just improved
            keep = "xnn.EarlyStopping(restore_best=True) loaded nothing back: its metric did not "
            keep += "get worse in the last epoch. To keep finite ones, use "
        else:
            keep = "To keep finite ones, train with xnn.EarlyStopping(restore_best=True) (the "
            keep += "best epoch's weights come back) or use "
        return (
            f"The model's weights are now non-finite ({bad} of {total} parameter "
            f"tensors hold NaN or infinity). {keep}ModelCheckpoint(monitor='train_loss') and "
            f"load its best_model_path (a last.ckpt saved now holds these non-finite weights). "
            f"To avoid the overflow, lower the learning rate or clip gradients "
            f"(trainer_kwargs={{'gradient_clip_val': 1.0}})."
        )


def _nonfinite(model: torch.nn.Module) -> tuple[int, int]:
    """How many of the model's floating-point parameter tensors hold NaN or infinity, of how
    many."""
    tensors = [p for p in model.parameters() if p.is_floating_point()]
    return sum(not bool(torch.isfinite(t).all()) for t in tensors), len(tensors)


def count_batches(batches: Any) -> int | None:
    """Lightning's batch count (a number, ``inf`` or a list of them) as PyBlaze's ``int | None``."""
    total = sum(batches) if isinstance(batches, list) else batches
    return int(total) if math.isfinite(total) else None


def validates_after(epoch: int, epochs: int, eval_every: int | None) -> bool:
    """Whether PyBlaze 2.3.2 validates after ``epoch`` (0-based) of ``epochs`` with a sized
    training loader: every epoch without ``eval_every``, else epochs ``0, n, 2n, ...`` and the
    last (``Engine.train``: ``current_epoch % eval_every == 0 or current_epoch == epochs - 1``).

    Example:
        >>> [e + 1 for e in range(7) if validates_after(e, 7, 5)]  # 1-based, as the notebooks
        [1, 6, 7]
    """
    return eval_every is None or epoch % eval_every == 0 or epoch == epochs - 1


class Epochs:
    """The epoch half of :class:`~pyblaze_pl._lightning.run.Run` (a mixin): everything between
    an epoch's start and its History record."""

    def validates(self, epoch: int) -> bool:
        """Whether the run validates after ``epoch`` (0-based): PyBlaze's ``eval_every``."""
        return validates_after(epoch, self.epochs, self.eval_every)

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
        self._silent_batches = 0
        self.values = {}
        self._logged_before = compat.metrics_snapshot(trainer) if self.own_steps else {}
        self.context.num_iterations = count_batches(trainer.num_training_batches)
        if not self.own_steps:
            # PyBlaze: every epoch of an engine trains in training mode, whatever mode the model
            # was left in (LightningModules keep Lightning's modes). before_epoch still sees
            # PyBlaze's mode, and a callback that calls eval() on a submodule there keeps it
            # frozen for the epoch.
            self.model.train()
        with self.pyblaze_mode():
            stop = self.dispatch.before_epoch(trainer.current_epoch, self.context.num_iterations)
        if stop:
            trainer.should_stop = True
        else:
            self.validated = False
        self._sync_stop()

    def add_batch_loss(self, outputs: Any) -> torch.Tensor | None:
        """Keeps the batch's loss and returns it (None: the batch returned none)."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if features.is_extra_epoch(self):
            return None
        if not isinstance(loss, torch.Tensor):
            # training_step returned None: a skipped batch, or manual optimization's step
            self._silent_batches += (
                self.own_steps and not self.trainer.lightning_module.automatic_optimization
            )
            return None
        loss = loss.detach()
        if self.own_steps and self.trainer.accumulate_grad_batches != 1:
            loss = loss * self.trainer.accumulate_grad_batches  # Lightning divided it
        self._losses.append(loss)
        self.dispatch.after_batch(loss)
        total = self.context.num_iterations
        if self.trainer.is_last_batch or (total is not None and len(self._losses) >= total):
            self._finalize_losses()
        return loss

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
        if not self.own_steps and not self.on_fabric:
            features.step_epoch_schedulers(self.trainer)
        self._flush_pending()
        if not self._losses and not self._silent_batches:  # stopped before the first batch
            return
        self._finalize_losses()
        micro, values = self._numbers(self.values if not self.own_steps else self._logged_values())
        self._losses = []
        self._append(micro, values)

    def _numbers(self, values: dict[str, torch.Tensor]) -> tuple[list[float], dict[str, float]]:
        """This epoch's batch losses and ``values`` as Python floats, in one transfer."""
        losses = [torch.stack(self._losses)] if self._losses else []
        numbers = to_host([*losses, *values.values()])
        micro, rest = numbers[: len(self._losses)], numbers[len(self._losses) :]
        return micro, dict(zip(values, rest, strict=True))

    def _logged_values(self) -> dict[str, torch.Tensor]:
        """The scalar epoch-level values the module has logged in this epoch (``*_step`` values
        left out): a value it did not log in this epoch is NaN in the History."""
        return {
            name: value
            for name, value in compat.logged_since(self.trainer, self._logged_before).items()
            if isinstance(value, torch.Tensor) and value.numel() == 1 and not name.endswith("_step")
        }

    def _append(self, micro: list[float], values: dict[str, float]) -> None:
        # PyBlaze's train_loss is the mean of the returned losses, whatever the module logs under
        # that name (a step-only ``self.log("train_loss", loss)`` holds the last batch's value).
        # Manual optimization that returns no loss: the record holds what the module logged.
        mean = math.fsum(micro) / len(micro) if micro else None
        record = {"micro_train_loss": micro, "train_loss": mean} if micro else {}
        record |= {k: v for k, v in values.items() if k not in record}
        for name, batches in self.engine.epoch_values().items():  # PyBlaze 2.x: batch_<name>
            record[f"batch_{name}"] = batches
            record[name] = math.fsum(batches) / len(batches)
        self.history._metrics.append(record)
        summary = Evaluation(
            {
                k: v
                for k, v in record.items()
                if k != "micro_train_loss" and not k.startswith("batch_")
            }
        )
        with self.pyblaze_mode():
            stop = self.dispatch.after_epoch(summary)
        if stop:
            self.trainer.should_stop = True
        bad = next((i for i, loss in enumerate(micro) if not math.isfinite(loss)), None)
        if self.stop_on_nonfinite and bad is not None:
            self.dispatch.stop(
                NonFiniteStop(
                    f"Stopping: the training loss became {micro[bad]} in epoch "
                    f"{len(self.history)} (batch {bad + 1} of {len(micro)}).",
                    self.model,
                    self.dispatch.training,
                )
            )
            self.trainer.should_stop = True
        # Every rank sees the same History; a callback that decides otherwise stops them all.
        self._sync_stop()

    def pyblaze_mode(self) -> Any:
        """PyBlaze's model mode for a training hook: eval after an epoch with validation; the
        ``train()``/``eval()`` calls the hook makes itself persist (nn/callbacks/_modes.py)."""
        return hook_mode(self.model, False if self.validated else None)

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
            micro, values = self._numbers(self.values if not self.own_steps else {})
            epoch = {"micro": micro, "values": values}
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
