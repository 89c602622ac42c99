"""The private LightningModule that runs an engine's batches inside a Lightning Trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden

from pyblaze_pl.nn._metrics import MetricSet
from pyblaze_pl.nn.engine._distributed import gather_predictions, unpadded_samples
from pyblaze_pl.nn.engine._recorder import training_epoch_complete

if TYPE_CHECKING:
    from pyblaze_pl.nn.engine.base import Engine


class EngineModule(pl.LightningModule):
    """Owns the user's model as a submodule and delegates every step to the engine.

    Optimization is manual: the engine's ``train_batch`` does backward and optimizer steps
    itself (as in PyBlaze), through :meth:`Engine.backward` and :meth:`Engine.optimizer_step`,
    which route through Lightning's strategy (precision, DDP, gradient clipping).
    """

    def __init__(
        self,
        engine: Engine,
        metrics: MetricSet | None = None,
        train_kwargs: dict[str, Any] | None = None,
        eval_kwargs: dict[str, Any] | None = None,
        predict_kwargs: dict[str, Any] | None = None,
        clip: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = engine.model
        self.engine = engine
        self.metrics = metrics or MetricSet()
        self.train_kwargs = train_kwargs or {}
        self.eval_kwargs = eval_kwargs or {}
        self.predict_kwargs = predict_kwargs or {}
        self.clip = clip or {}
        self.epoch_metrics: dict[str, torch.Tensor] = {}
        self.gathered_predictions: Any = None
        self._optimizers: dict[int, Any] = {}
        self.direct = False

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` twice per hook call, several times per batch;
        # nn.Module.__setattr__'s Parameter/Module checks are not needed for a plain string.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    # optimization
    def configure_optimizers(self) -> list[torch.optim.Optimizer] | None:
        optimizers = [v for v in self.train_kwargs.values() if isinstance(v, torch.optim.Optimizer)]
        return optimizers or None

    def on_train_start(self) -> None:
        optimizers = self.optimizers(use_pl_optimizer=True)
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        self._optimizers = {id(o.optimizer): o for o in optimizers}
        self.direct = runs_plainly(self.trainer) and self.clip.get("gradient_clip_val") is None

    def run_backward(self, loss: torch.Tensor) -> None:
        """Back-propagates through Lightning's strategy and precision plugin (and their hooks),
        or directly when nothing would change the result (:func:`runs_plainly`)."""
        if self.direct:
            loss.backward()
        else:
            self.manual_backward(loss)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Steps ``optimizer`` through Lightning (precision plugin, clipping, hooks), then zeroes
        its gradients; Lightning's step counter (``global_step``) counts the step either way."""
        wrapped = self._optimizers.get(id(optimizer))
        if wrapped is None:  # not registered with Lightning
            optimizer.step()
        elif self.direct:
            wrapped._on_before_step()
            optimizer.step()
            wrapped._on_after_step()
        else:
            if self.clip.get("gradient_clip_val") is not None:
                self.clip_gradients(wrapped, **self.clip)
            wrapped.step()
        optimizer.zero_grad()

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        engine = self.engine
        engine.iteration = batch_idx
        engine.num_iterations = self.trainer.num_training_batches
        engine.is_last_iteration = training_epoch_complete(self.trainer)
        loss = engine.train_batch(batch, **self.train_kwargs)
        if isinstance(loss, torch.Tensor):
            return loss.detach()
        return torch.as_tensor(loss, dtype=torch.float32, device=self.device)

    # evaluation
    def on_validation_epoch_start(self) -> None:
        self.metrics.start(unpadded_samples(self.trainer))  # DDP: count no sample twice

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.metrics.update(*self.engine.eval_batch(batch, **self.eval_kwargs))

    def on_validation_epoch_end(self) -> None:
        values = self.metrics.compute()
        if self.trainer.sanity_checking:
            return
        if self.trainer.state.fn == "fit":
            values = log_validation_metrics(self, values)
        self.epoch_metrics = values

    def on_train_epoch_start(self) -> None:
        self.epoch_metrics = {}

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        return self.engine.predict_batch(batch, **self.predict_kwargs)

    def on_predict_epoch_end(self) -> None:
        if self.trainer.world_size > 1:
            local = self.engine.collate_predictions(self.trainer.predict_loop.predictions)
            self.gathered_predictions = gather_predictions(local)


_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def runs_plainly(trainer: pl.Trainer) -> bool:
    """Whether backward and optimizer steps may skip Lightning's wrappers: one process, full
    precision, and no callback that implements a per-step hook. The wrappers would then only
    call empty hooks, yet cost about 30 µs per step."""
    return (
        type(trainer.strategy) is SingleDeviceStrategy
        and type(trainer.precision_plugin) is Precision
        and not any(
            is_overridden(hook, callback, pl.Callback)
            for callback in trainer.callbacks
            for hook in _STEP_HOOKS
        )
    )


def log_validation_metrics(
    module: pl.LightningModule, values: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Logs ``values`` as ``val_<name>`` (for Lightning callbacks and loggers); returns them so."""
    values = {f"val_{k}": v for k, v in values.items()}
    distributed = module.trainer.world_size > 1  # values are global already: the mean keeps them
    for name, value in values.items():
        module.log(name, value.float(), sync_dist=distributed)
    return values
