"""The run's one Lightning callback: Lightning's hooks forwarded to the :class:`~.run.Run`. The
Fabric runner calls the same methods in the same order."""

from __future__ import annotations

import copy
import functools
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from pyblaze_pl._lightning import context as batch_context
from pyblaze_pl._lightning import features, resume
from pyblaze_pl._lightning.distributed import unpadded_samples
from pyblaze_pl._lightning.epoch import count_batches
from pyblaze_pl._lightning.interrupts import Interrupted, Terminated
from pyblaze_pl._lightning.sanity import check_validation_batch
from pyblaze_pl._tensors import map_tensors
from pyblaze_pl.nn.callbacks._modes import model_mode

if TYPE_CHECKING:
    from pyblaze_pl._lightning.run import Run


def _on_cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().cpu()


class Hooks:
    """The run's one Lightning callback: forwards Lightning's hooks to the :class:`Run`."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._token: Any = None
        self._logged_epoch: int | None = None
        self._step_readers = False  # whether anything reads a per-step train_loss

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.run.trainer = trainer
        self._token = batch_context.publish(self.run.context)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._token is not None:
            batch_context.withdraw(self._token)
            self._token = None

    # training
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        run = self.run
        self._step_readers = not (run.own_steps or run.on_fabric) and bool(
            trainer.loggers or trainer.progress_bar_callback or run.lightning_callbacks
        )
        self.run.context.start()
        self.run.metrics.to(pl_module.device)
        check_validation_batch(self.run)  # before any PyBlaze callback starts its output
        self.run.dispatch.before_training(self.run.epochs)
        self.run.resume_mid_epoch()  # Lightning calls no on_train_epoch_start for that epoch

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        run = self.run
        if run.eval_every is not None and not run.on_fabric:  # PyBlaze's schedule, epoch by epoch
            validates = run.validates(trainer.current_epoch)
            trainer.check_val_every_n_epoch = 1 if validates else trainer.max_epochs + 1
        run.start_epoch()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, *args: Any) -> None:
        loss = self.run.add_batch_loss(outputs)
        if loss is None or not self._step_readers:
            return
        # As Lightning's self.log("train_loss", loss, on_step=True): loggers get the batch's loss
        # every log_every_n_steps steps, the progress bar shows it and step-level monitors see
        # it; the epoch's value (PyBlaze's mean) is logged under the same name when it ends.
        # Lightning's log costs about 0.35 ms a step: only when a logger, the progress bar or a
        # Lightning callback can read it (never for a LightningModule's own steps or on Fabric).
        pl_module.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_train_loss(pl_module)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.run._flush_pending()
        with self.run.pyblaze_mode():
            self.run.dispatch.after_training(prints=trainer.is_global_zero)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.run.dispatch.close()
        if isinstance(exception, KeyboardInterrupt) and trainer.state.fn == "fit":
            self.run.dispatch.stop(
                Interrupted(
                    f"Training interrupted (KeyboardInterrupt) in epoch "
                    f"{trainer.current_epoch + 1}; returning the History of the completed epochs."
                )
            )
            self.run.dispatch.after_training(prints=trainer.is_global_zero)
        elif trainer.received_sigterm and trainer.state.fn == "fit":  # the process ends next
            self.run.dispatch.after_training(prints=trainer.is_global_zero)  # trackers close

    def _log_train_loss(self, pl_module: Any) -> None:
        run = self.run
        if run.own_steps or run.on_fabric or self._logged_epoch == run.trainer.current_epoch:
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
                self.run.dispatch.before_predictions(count_batches(trainer.num_val_batches))
        if trainer.state.fn != "fit":
            self.run.context.start()

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *args: Any
    ) -> None:
        if _ignored(self.run, trainer):
            return
        run = self.run
        if len(run.metrics):
            with run.step_context():  # in autocast under mixed precision, as a validation_step
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
        fitting = trainer.state.fn == "fit"
        if fitting:
            run.validated = True
            values = {f"val_{k}": v for k, v in values.items()}
            # Lightning callbacks that act when validation ends (ModelCheckpoint) see train_loss.
            if run._losses_final:
                self._log_train_loss(pl_module)
        if not run.on_fabric:  # for Lightning callbacks and loggers, under the History's names
            distributed = trainer.world_size > 1  # values are global already
            for name, value in values.items():
                logged = name if fitting else f"val_{name}"
                pl_module.log(logged, value.float(), sync_dist=distributed)
        run.values = values

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not _ignored(self.run, trainer):
            self.run.dispatch.after_predictions()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.run.context.start()
        self.run.dispatch.before_predictions(count_batches(trainer.num_predict_batches))

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, *args: Any) -> None:
        self.run.predictions.append(map_tensors(outputs, _on_cpu))
        self.run.dispatch.after_prediction_batch()
        if trainer.received_sigterm:  # Lightning's predict loop does not stop for SIGTERM
            raise Terminated("predict")

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.run.dispatch.after_predictions()

    # checkpoints: the History so far and the PyBlaze callbacks' state, under the checkpoint's
    # own key (resume.STATE_KEY) rather than this callback's state_dict, so that plain Lightning
    # resumes the file without asking for this callback (the default state_dict is empty)
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        state = {**self.run.state_dict(), "callbacks": self.run.dispatch.state_dict()}
        checkpoint[resume.STATE_KEY] = state

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(resume.STATE_KEY)
        if state is not None:
            self.load_state_dict(copy.deepcopy(state))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # also: files of 0.1.0
        self.run.load_state_dict(state_dict)
        self.run.dispatch.load_state_dict(state_dict.get("callbacks", {}))


def _ignored(run: Run, trainer: Any) -> bool:
    """Validation that is not PyBlaze's: sanity checks, and after SWA's batch-norm pass."""
    fit = trainer.state.fn == "fit"
    return trainer.sanity_checking or (fit and features.is_extra_epoch(run))


@functools.cache
def hooks_class(pl: ModuleType) -> type:
    """The run's callback class for the Lightning namespace ``pl``."""
    return type("RunHooks", (Hooks, pl.Callback), {"__module__": __name__})
