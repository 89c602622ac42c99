"""Lightning callbacks and Trainer options that assume they own the training loop.

The adapter module optimizes manually (the engine steps its optimizers), and pyblaze_pl owns the
epoch count, the History and the console output. Some Lightning features assume otherwise. This
module decides, before any training, for each of them: it is adapted so that it behaves as in a
plain Lightning run of the same model, or it is refused with a message that says what to do
instead. docs/lightning.md has the resulting compatibility table.

- :func:`prepare`: the checks before training, and Trainer options the given callbacks need.
- :func:`show_requested_output`: Lightning's info messages the user asked for (``ModelSummary``,
  ``verbose=True``, ``profiler=...``) are shown although the call is otherwise quiet.
- :func:`is_extra_epoch`, :func:`step_epoch_schedulers`: ``StochasticWeightAveraging`` under
  manual optimization (its LR schedule and its batch-norm pass).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from pyblaze_pl.nn.callbacks.progress import BatchProgressLogger, EpochProgressLogger

if TYPE_CHECKING:
    from pyblaze_pl._lightning.run import Run


def _named(callbacks: list[Any], cls: type) -> list[str]:
    return [type(c).__name__ for c in callbacks if isinstance(c, cls)]


def prepare(run: Run, options: dict[str, Any], *, fit: bool) -> dict[str, Any]:
    """Checks the Lightning callbacks and options of ``run`` and returns the Trainer options.

    Raises:
        ValueError: If a callback or option cannot work in this call; the message says why and
            what to use instead. Raised before the Trainer exists, so before any training.
    """
    pl = run.pl
    given = run.lightning_callbacks
    options = dict(options)
    bars = _named(given, pl.callbacks.ProgressBar)
    if bars:
        if run.user_options.get("enable_progress_bar") is False:
            raise ValueError(
                f"Expected a progress bar callback only with the progress bar enabled. Received: "
                f"{bars[0]} in callbacks and trainer_kwargs['enable_progress_bar']=False. Remove "
                f"one of them."
            )
        options["enable_progress_bar"] = True
    if options.get("enable_progress_bar"):
        loggers = [
            type(c).__name__
            for c in run.dispatch.training
            if isinstance(c, (BatchProgressLogger, EpochProgressLogger))
        ]
        if loggers:
            bar = bars[0] if bars else "trainer_kwargs['enable_progress_bar']=True"
            raise ValueError(
                f"Expected one progress display per call. Received: xnn.{loggers[0]} and "
                f"Lightning's progress bar ({bar}). Both print per-epoch progress (Lightning "
                f"counts epochs from 0, PyBlaze from 1). Keep xnn.{loggers[0]} (PyBlaze's epoch "
                f"lines with metrics) or the Lightning bar, not both."
            )
    for cls_name, option in (
        ("LearningRateMonitor", "learning rates"),
        ("DeviceStatsMonitor", "device statistics"),
    ):
        found = _named(given, getattr(pl.callbacks, cls_name))
        if found and options.get("logger") in (False, None):
            raise ValueError(
                f"Expected a Lightning logger for {found[0]}, which writes {option} to the "
                f"Trainer's loggers. Received: no logger. Pass one, e.g. "
                f'trainer_kwargs={{"logger": CSVLogger("logs")}} (from '
                f"{pl.__name__}.loggers), or remove {found[0]}."
            )
    if _named(given, pl.callbacks.BatchSizeFinder):
        raise ValueError(
            "Expected no BatchSizeFinder: it tunes a batch size by rebuilding the DataLoaders of "
            "a LightningModule or DataModule with a `batch_size` attribute, and Lightning refuses "
            "it for loaders passed to fit, which is how pyblaze_pl receives its data. Received: "
            "BatchSizeFinder in callbacks. Choose the batch size of your DataLoader instead."
        )
    if _named(given, pl.callbacks.LearningRateFinder):
        raise ValueError(
            "Expected no LearningRateFinder: it searches a learning rate by stepping a "
            "learning-rate schedule Lightning applies only to modules it optimizes itself, and "
            "pyblaze_pl engines step their optimizers themselves. Received: LearningRateFinder "
            "in callbacks. Run `Tuner(Trainer()).lr_find(...)` on a LightningModule, or use "
            "xnn.LearningRateScheduler, and pass the learning rate to your optimizer."
        )
    backbone = _named(given, pl.callbacks.BackboneFinetuning)
    if backbone and not hasattr(run.model, "backbone"):
        raise ValueError(
            f"Expected a model with a `backbone` attribute for {backbone[0]}, which freezes and "
            f"later unfreezes `model.backbone`. Received: {type(run.model).__name__} without "
            f"one. Name the part to fine-tune `backbone`, or subclass BaseFinetuning."
        )
    if fit:
        _check_fit(run, given, options)
    return options


def _check_fit(run: Run, given: list[Any], options: dict[str, Any]) -> None:
    pl = run.pl
    manual = not run.own_steps or not run.module.automatic_optimization
    if _named(given, pl.callbacks.GradientAccumulationScheduler):
        if manual:
            raise ValueError(
                "Expected no GradientAccumulationScheduler for a model trained by a pyblaze_pl "
                "engine: the engine steps the optimizer itself. Received: "
                "GradientAccumulationScheduler in callbacks. Pass "
                "`gradient_accumulation_steps=k` to fit (k batches per optimizer step), or make "
                "the model a LightningModule estimator."
            )
        steps = options.get("accumulate_grad_batches", 1)
        if steps != 1:
            raise ValueError(
                f"Expected either GradientAccumulationScheduler or gradient_accumulation_steps. "
                f"Received: both (gradient_accumulation_steps={steps}). Remove one of them."
            )
    if not run.own_steps:
        _check_backbone_optimizers(run, given)
    swa = _named(given, pl.callbacks.StochasticWeightAveraging)
    if swa and not run.own_steps and len(run.optimizers) != 1:
        raise ValueError(
            f"Expected exactly one optimizer with StochasticWeightAveraging (it averages the "
            f"weights one optimizer trains and sets its learning rate). Received: "
            f"{len(run.optimizers)} optimizers. Remove {swa[0]} or train with one optimizer."
        )


def _check_backbone_optimizers(run: Run, given: list[Any]) -> None:
    """Refuses ``BackboneFinetuning`` with an optimizer that already holds backbone parameters.

    When it unfreezes the backbone, the callback adds its parameters to the optimizer as a new
    group with a reduced learning rate (``backbone_initial_ratio_lr`` times the current one, then
    its schedule); Lightning skips parameters the optimizer holds already
    (``filter_on_optimizer``), so with ``optimizer=SGD(model.parameters(), ...)`` the backbone
    would train at the full learning rate. Subclasses with their own ``finetune_function`` are
    left alone.
    """
    base = run.pl.callbacks.BackboneFinetuning
    callbacks = [
        c
        for c in given
        if isinstance(c, base) and type(c).finetune_function is base.finetune_function
    ]
    backbone = getattr(run.model, "backbone", None)
    if not callbacks or not isinstance(backbone, torch.nn.Module):
        return
    ids = {id(p) for p in backbone.parameters()}
    for optimizer in run.optimizers:
        held = {id(p) for g in optimizer.param_groups for p in g["params"]} & ids
        if held:
            callback = callbacks[0]
            raise ValueError(
                f"Expected an optimizer over the parameters outside `model.backbone` with "
                f"{type(callback).__name__}: when it unfreezes the backbone "
                f"(unfreeze_backbone_at_epoch={callback.unfreeze_backbone_at_epoch}) it adds "
                f"the backbone's parameters to the optimizer itself, at a reduced learning rate "
                f"(backbone_initial_ratio_lr={callback.backbone_initial_ratio_lr} times the "
                f"current one). Received: a {type(optimizer).__name__} that already holds "
                f"{len(held)} of the backbone's {len(ids)} parameters, which Lightning would "
                f"leave at the optimizer's full learning rate. Pass an optimizer over the rest "
                f"of the model, e.g. optim.SGD(model.head.parameters(), lr=...) or "
                f"optim.SGD([p for n, p in model.named_parameters() if not "
                f"n.startswith('backbone.')], lr=...)."
            )


def is_extra_epoch(run: Run) -> bool:
    """Whether the current epoch is one a callback added after the requested ``epochs``.

    ``StochasticWeightAveraging`` adds one to models with batch norm: a forward pass over the
    training data that recomputes the batch-norm statistics of the averaged weights. It is not a
    training epoch: no optimizer steps, no History record, no PyBlaze epoch hooks.
    """
    epochs = getattr(run, "epochs", None)
    return epochs is not None and run.trainer.current_epoch >= epochs


def step_epoch_schedulers(trainer: Any) -> None:
    """Steps the epoch-wise learning-rate schedulers Lightning callbacks added, as Lightning does
    after each epoch of a module it optimizes itself (``_update_learning_rates``).

    Lightning skips this in manual optimization, which the adapter uses; the adapter's own
    ``configure_optimizers`` returns no schedulers, so every one here came from a callback
    (``StochasticWeightAveraging``'s ``SWALR``).
    """
    for config in trainer.lr_scheduler_configs:
        if config.interval != "epoch" or config.reduce_on_plateau:
            continue
        if (trainer.current_epoch + 1) % config.frequency == 0:
            config.scheduler.step()


def _requested_sources(run: Run) -> tuple[set[str], set[str]]:
    """Module names and source files of the Lightning classes whose info messages the user
    asked for (their loggers are named after their modules)."""
    pl = run.pl
    classes: list[type] = []
    for callback in run.lightning_callbacks:
        if isinstance(callback, pl.callbacks.ModelSummary) or getattr(callback, "verbose", False):
            classes.append(type(callback))
    options = run.user_options
    if options.get("enable_model_summary"):
        classes.append(pl.callbacks.ModelSummary)
    profiler = options.get("profiler")
    if profiler:
        classes.append(type(profiler) if not isinstance(profiler, str) else pl.profilers.Profiler)
    modules, files = set(), set()
    for cls in classes:
        for base in cls.__mro__:
            if base.__module__.split(".")[0] in ("pytorch_lightning", "lightning"):
                modules.add(base.__module__)
                files.add(inspect.getfile(base))
    return modules, files


class _FromFiles(logging.Filter):
    """Lets info records through only when they were logged from one of ``files``."""

    def __init__(self, files: set[str]) -> None:
        super().__init__()
        self.files = files

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.pathname in self.files


# Loggers of Lightning's ``rank_zero_info`` (shared with its banners), in the versions checked.
_RANK_ZERO = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)


@contextmanager
def show_requested_output(run: Run) -> Iterator[None]:
    """Shows the info messages of the Lightning objects the user asked output from, inside the
    otherwise quiet call: an explicit ``ModelSummary``, callbacks with ``verbose=True``
    (``EarlyStopping``, ``ModelCheckpoint``), ``profiler=...`` and ``enable_model_summary=True``.

    Lightning logs them at info level, on the module's logger or through ``rank_zero_info`` (a
    logger shared with its banners). Those loggers are lowered to info for the call, with a
    filter that passes only records logged from the requested classes' source files.
    """
    modules, files = _requested_sources(run)
    if not files:
        yield
        return
    loggers = [logging.getLogger(name) for name in sorted(modules | set(_RANK_ZERO))]
    levels = [logger.level for logger in loggers]
    only = _FromFiles(files)
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addFilter(only)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
            logger.removeFilter(only)
