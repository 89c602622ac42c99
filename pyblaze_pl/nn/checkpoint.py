"""Loading the weights of a Lightning checkpoint into the user's plain model."""

from __future__ import annotations

import os
from collections.abc import Mapping

from torch import nn

from pyblaze_pl._files import read_torch_file
from pyblaze_pl._fit_checks import check_weights
from pyblaze_pl._io import require_file

_PREFIX = "model."


class NotACheckpoint(ValueError, KeyError):
    """A file that holds no Lightning checkpoint: a ValueError, and a KeyError (it has no
    ``state_dict``) as earlier releases raised."""

    def __str__(self) -> str:  # KeyError quotes its message
        return str(self.args[0]) if self.args else ""


def load_checkpoint_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Loads the weights of a Lightning checkpoint written during ``fit`` (by
    ``ModelCheckpoint``, say) into ``model`` and returns it.

    Checkpoints of plain models hold the model's weights under ``model.`` (the module Lightning
    trains holds the user's model as ``model``), checkpoints of LightningModule estimators hold
    the module's own keys; both load. The file's CRC-32 checksums are verified first, then it is
    read with ``weights_only=True``: a corrupted file is refused and loading never runs pickled
    code. Everything is checked before anything is loaded: after an error the model's weights
    are unchanged.

    Args:
        model: The model to load the weights into (of the class that was trained).
        path: The ``.ckpt`` file.

    Raises:
        FileNotFoundError: If ``path`` does not exist (``IsADirectoryError`` for a directory).
        ValueError: If the file is not a torch file, is truncated or corrupted (its checksums do
            not match), or holds a pickle that could run code; the message names the file and
            says what it is.
        KeyError: If the file is not a Lightning checkpoint (it has no ``state_dict``); also a
            ValueError.
        RuntimeError: If the weights do not fit ``model`` (as ``nn.Module.load_state_dict``);
            also a ValueError, naming the first parameter that does not fit.

    Example:
        >>> checkpoint = ModelCheckpoint(dirpath="ckpts", monitor="val_loss")  # doctest: +SKIP
        >>> model.fit(train_loader, callbacks=[checkpoint], ...)  # doctest: +SKIP
        >>> xnn.load_checkpoint_weights(Model(), checkpoint.best_model_path)  # doctest: +SKIP
    """
    path = require_file(path, "a Lightning checkpoint")
    expected = (
        f"Expected a Lightning checkpoint (a dict with a 'state_dict', e.g. last.ckpt written "
        f"by ModelCheckpoint). Received: '{path}'"
    )
    checkpoint = read_torch_file(path, expected)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        keys = sorted(map(str, checkpoint))[:5] if isinstance(checkpoint, Mapping) else None
        raise NotACheckpoint(
            f"{expected}, which holds a {type(checkpoint).__name__}"
            + (f" with keys {keys}." if keys is not None else ".")
        )
    own = model.state_dict()
    if set(state) != set(own) and all(key.startswith(_PREFIX) for key in state):
        state = {key[len(_PREFIX) :]: value for key, value in state.items()}
    check_weights(
        own, state, strict=True, source=f"'{path}'", model=type(model).__name__, action="Load"
    )
    model.load_state_dict(state)
    return model
