"""The adapter LightningModule: owns the user's model and hands every batch to the run."""

from __future__ import annotations

import copy
import functools
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from pyblaze_pl._lightning import features
from pyblaze_pl._lightning.context import BatchContext

if TYPE_CHECKING:
    from pyblaze_pl._lightning.run import Run


class _Adapter:
    """Logic of the adapter module, combined with the LightningModule class of the call's Lightning
    namespace by :func:`adapter_class`.

    Optimization is manual: the engine's ``train_batch`` does backward and optimizer steps itself
    (as in PyBlaze), through the run's :class:`~pyblaze_pl._lightning.context.BatchContext`. The
    module holds the user's model as ``model`` (checkpoints hold ``model.*`` weights) and nothing
    else; attributes it does not have are looked up on the model, so Lightning callbacks written
    for the user's module can read ``pl_module.encoder``.
    """

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = run.engine.model
        object.__setattr__(self, "run", run)  # not a submodule: not moved, not checkpointed

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            model = self._modules.get("model")
            if model is None or name.startswith("__"):
                raise
            return getattr(model, name)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # Callbacks that keep a copy of the module (StochasticWeightAveraging, EMA) copy the model,
        # never the run or the Trainer it belongs to.
        for shared in (self.run, self.__dict__.get("_trainer")):
            memo[id(shared)] = shared
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for key, value in self.__dict__.items():
            copied.__dict__[key] = copy.deepcopy(value, memo)
        return copied

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def configure_optimizers(self) -> list[torch.optim.Optimizer] | None:
        return self.run.optimizers or None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.run.train_batch(batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        return self.run.eval_batch(batch, batch_idx)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        return self.run.predict_batch(batch, batch_idx)

    def on_train_epoch_end(self) -> None:
        # Lightning calls this after the callbacks' on_train_epoch_end and before its monitoring
        # callbacks (ModelCheckpoint, EarlyStopping): the epoch's record is complete here.
        self.run.end_epoch()


@functools.cache
def adapter_class(pl: ModuleType) -> type:
    """The adapter class for the Lightning namespace ``pl``."""
    return type("EngineModule", (_Adapter, pl.LightningModule), {"__module__": __name__})


class TrainerContext(BatchContext):
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
