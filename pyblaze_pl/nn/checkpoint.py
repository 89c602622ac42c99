"""Loading the weights of a Lightning checkpoint into the user's plain model."""

from __future__ import annotations

import os

import torch
from torch import nn

from pyblaze_pl._io import require_file

_PREFIX = "model."


def load_checkpoint_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Loads the weights of a Lightning checkpoint written during ``fit`` (by
    ``ModelCheckpoint``, say) into ``model`` and returns it.

    Checkpoints of plain models hold the model's weights under ``model.`` (the module Lightning
    trains holds the user's model as ``model``), checkpoints of LightningModule estimators hold
    the module's own keys; both load. The file is read with ``weights_only=True``: loading never
    runs pickled code.

    Args:
        model: The model to load the weights into (of the class that was trained).
        path: The ``.ckpt`` file.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        KeyError: If the file is not a Lightning checkpoint (it has no ``state_dict``).
        RuntimeError: If the weights do not fit ``model`` (as ``nn.Module.load_state_dict``).

    Example:
        >>> checkpoint = ModelCheckpoint(dirpath="ckpts", monitor="val_loss")  # doctest: +SKIP
        >>> model.fit(train_loader, callbacks=[checkpoint], ...)  # doctest: +SKIP
        >>> xnn.load_checkpoint_weights(Model(), checkpoint.best_model_path)  # doctest: +SKIP
    """
    path = require_file(path, "a Lightning checkpoint")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise KeyError(
            f"Expected a Lightning checkpoint (a dict with a 'state_dict'). Received: '{path}', "
            f"which holds {type(checkpoint).__name__}"
            + (f" with keys {sorted(checkpoint)[:5]}." if isinstance(checkpoint, dict) else ".")
        )
    state = checkpoint["state_dict"]
    own = set(model.state_dict())
    if set(state) != own and all(key.startswith(_PREFIX) for key in state):
        state = {key[len(_PREFIX) :]: value for key, value in state.items()}
    model.load_state_dict(state)
    return model
