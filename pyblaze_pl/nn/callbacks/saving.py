"""Saving the model after every epoch, as PyBlaze v1's ``ModelSaverCallback``."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from pyblaze_pl._io import check_writable_folder, remove_stale_temps_in
from pyblaze_pl.nn._weights import save_weights
from pyblaze_pl.nn.callbacks.base import TrainingCallback, is_global_zero
from pyblaze_pl.nn.configurable import Configurable
from pyblaze_pl.nn.results import Evaluation


class ModelSaverCallback(TrainingCallback):
    """Saves the model after every epoch under a name that contains the epoch (0-based).

    A :class:`~pyblaze_pl.nn.Configurable` model is saved with its ``save`` (``<file>.json`` with
    the config and ``<file>.pt`` with the weights); any other model as its state dict, moved to
    the CPU, in ``<file>.pt``. Every file is written atomically; in a multi-process (DDP) run only
    global rank 0 writes. Temporary files that killed saves left in ``directory`` are removed by
    the next save there.

    Args:
        directory: The directory of the files (created if needed).
        file_template: The file name without extension; ``file_template.format(epoch)`` must give
            a different name for every epoch.

    Raises:
        ValueError: If ``file_template`` does not format to one name per epoch.
        OSError: When training starts, before the first batch, if ``directory`` cannot be written
            (``PermissionError``, a read-only filesystem, a file on its path); the message names
            it and the cause.

    Example:
        >>> saver = ModelSaverCallback("runs/checkpoints")
        >>> model.fit(loader, epochs=3, callbacks=[saver], ...)  # doctest: +SKIP
        >>> # runs/checkpoints/model_epoch-0.pt, model_epoch-1.pt, model_epoch-2.pt
    """

    def __init__(self, directory: str | os.PathLike, file_template: str = "model_epoch-{}") -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(
                f"Expected directory to be a str or a path. Received: {directory!r} "
                f"({type(directory).__name__})."
            )
        if not isinstance(file_template, str):
            raise TypeError(
                f"Expected file_template to be a str such as 'model_epoch-{{}}'. "
                f"Received: {file_template!r} ({type(file_template).__name__})."
            )
        try:
            distinct = file_template.format(0) != file_template.format(1)
        except (IndexError, KeyError, ValueError):
            distinct = False
        if not distinct:
            raise ValueError(
                f"Expected file_template to hold one '{{}}' placeholder for the epoch, such as "
                f"'model_epoch-{{}}'. Received: {file_template!r}."
            )
        self.directory = Path(directory).expanduser()
        self.file_template = file_template
        self.model: nn.Module | None = None
        self.epoch: int | None = None

    def file(self, epoch: int) -> Path:
        """The path of epoch ``epoch``'s file(s), without extension (a trailing ``.pt`` or
        ``.json`` in the template is dropped).

        Example:
            >>> ModelSaverCallback("runs").file(2)
            PosixPath('runs/model_epoch-2')
        """
        path = self.directory / self.file_template.format(epoch)
        return path.with_suffix("") if path.suffix in (".pt", ".json") else path

    def before_training(self, model: nn.Module, num_epochs: int) -> None:
        if is_global_zero():  # the process that writes; before the first batch
            check_writable_folder(self.directory, "ModelSaverCallback's directory")
        self.model = model
        self.epoch = None

    def before_epoch(self, current: int, num_iterations: int) -> None:
        self.epoch = current

    def after_epoch(self, metrics: Evaluation) -> None:
        if self.model is None or self.epoch is None or not is_global_zero():
            return
        file = self.file(self.epoch)
        remove_stale_temps_in(file.parent, (".pt", ".json"))  # left by killed saves
        if isinstance(self.model, Configurable):
            self.model.save(file)
        else:
            save_weights(self.model, file.with_name(file.name + ".pt"))
        self.epoch = None

    def after_training(self) -> None:
        self.model = None
        self.epoch = None
