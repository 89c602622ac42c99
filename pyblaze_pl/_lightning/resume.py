"""Exact resumes: random number generator states in checkpoints, and checkpoints that fit the model.

A checkpoint holds the state of every random number generator that training draws from (torch's
CPU generator, each CUDA device's generator where CUDA is in use, numpy's and Python's ``random``)
as they were when it was written. Restoring them at the matching point of the resumed run makes
shuffling (a ``DataLoader(shuffle=True)`` draws its order from torch's global generator) and
dropout draw the same numbers as in the uninterrupted run.

Everything here is plain torch, numpy and Python; the states are stored as tensors, numbers and
lists so that checkpoints still load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

# the checks of what a checkpoint holds, plain torch; re-exported for the run
from pyblaze_pl._fit_checks import WeightsMismatch, check_optimizers, check_weights

__all__ = [
    "STATE_KEY",
    "WeightsMismatch",
    "capture_rng",
    "check_checkpoint",
    "check_optimizers",
    "check_weights",
    "is_stateful",
    "load_rank_state",
    "rank_states",
    "restore_rng",
    "saved_state",
    "warn_inexact_mid_epoch",
]

# The checkpoint key of the run's state (History, PyBlaze callbacks, generators): a key of its own,
# not the Lightning callback's ``callbacks`` entry, which plain Lightning asks to be passed again.
STATE_KEY = "pyblaze_pl"


def saved_state(checkpoint: Mapping[str, Any], state_key: str) -> Mapping[str, Any]:
    """The run's state in ``checkpoint``: under :data:`STATE_KEY`, or (files written by release
    0.1.0) under the run callback's ``state_key`` in ``callbacks``; empty if there is none (a
    plain Lightning checkpoint).

    Example:
        >>> dict(saved_state({"pyblaze_pl": {"epoch": None}}, "RunHooks"))
        {'epoch': None}
    """
    state = checkpoint.get(STATE_KEY)
    if state is None:
        state = (checkpoint.get("callbacks") or {}).get(state_key)
    return state or {}


def capture_rng() -> dict[str, Any]:
    """The states of the random number generators that training draws from.

    Returns:
        A dict with ``torch`` (CPU generator state), ``numpy``, ``python`` and, when CUDA is in use
        in this process, ``cuda`` (one state per device). CUDA is never initialised for it.

    Example:
        >>> state = capture_rng()
        >>> a = torch.rand(1)
        >>> restore_rng(state)
        >>> bool(torch.rand(1) == a)
        True
    """
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Sets the random number generators to a state from :func:`capture_rng`.

    Args:
        state: What :func:`capture_rng` returned (possibly after a save and a load).

    Example:
        >>> state = capture_rng()
        >>> restore_rng(state)
    """
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state(
        (
            saved["kind"],
            saved["keys"].numpy().astype(np.uint32),
            saved["position"],
            saved["has_gauss"],
            saved["cached"],
        )
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, device)


def warn_inexact_mid_epoch(epoch: int, batches: int, loader: object) -> None:
    """Warns that a checkpoint written mid-epoch cannot resume exactly with ``loader``."""
    warnings.warn(
        f"Resuming from a checkpoint written in the middle of epoch {epoch + 1} (after {batches} "
        f"batches) with a train loader that cannot restore its position "
        f"({type(loader).__name__} has no state_dict/load_state_dict, or the checkpoint holds "
        f"no loader state): the epoch's remaining batches will not be the ones an uninterrupted "
        f"run trains on. For exact mid-epoch resumes, train with "
        f"torchdata.stateful_dataloader.StatefulDataLoader (pip install torchdata) from the "
        f"start; or resume from a checkpoint written at the end of an epoch.",
        UserWarning,
        stacklevel=4,
    )


def is_stateful(loader: object) -> bool:
    """Whether Lightning can save and restore ``loader``'s position (``state_dict`` and
    ``load_state_dict``, as torchdata's ``StatefulDataLoader`` has)."""
    return callable(getattr(loader, "state_dict", None)) and callable(
        getattr(loader, "load_state_dict", None)
    )


def rank_states(
    trainer: Any, partial: list[float], rng: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a checkpoint needs from every process: its generators' states and the batch losses of
    an unfinished epoch (``partial``, this process's own). ``rng``: states to save instead of
    the current ones (those of a resumed run that were not restored yet).

    Lightning builds the checkpoint on every process (``Trainer.save_checkpoint`` must be called
    by all of them) and process 0 writes it, so with several processes the states are gathered
    here, once per checkpoint.
    """
    local = {"rng": capture_rng() if rng is None else rng, "partial": partial}
    ranks: list[Any] = [local]
    if trainer.world_size > 1:
        ranks = [None] * trainer.world_size
        torch.distributed.all_gather_object(ranks, local)
    return {"ranks": ranks, "stateful_loader": is_stateful(trainer.train_dataloader)}


def load_rank_state(
    trainer: Any, state: Mapping[str, Any], unrecorded: bool, iterated_later: bool
) -> dict[str, Any] | None:
    """This process's part of :func:`rank_states`, from a checkpoint being loaded.

    The generators must be restored right before the first random draw that follows the
    checkpoint in an uninterrupted run (Lightning 2.4 to 2.6 order, checked empirically by
    ``tests/test_exact_resume.py`` on 2.4.0, 2.5.6 and 2.6.6):

    - written after the epoch was recorded (``ModelCheckpoint`` at the end of a training epoch):
      from Lightning 2.5 the resumed run creates the next epoch's loader iterator, which draws
      the shuffling seed, right after loading, so the generators are restored here, at once;
      Lightning 2.4 creates it again after ``on_train_epoch_start`` (``iterated_later``, see
      :func:`compat.restarts_epochs`): :meth:`Run.start_epoch` restores;
    - written after the epoch's batches but before its record (``unrecorded``: when validation
      ends): the resumed run first closes that epoch, with an iterator it discards (Lightning
      2.4 also calls ``on_train_epoch_start`` and validates again), and creates the next epoch's
      iterator after ``on_train_epoch_start``: :meth:`Run.start_epoch` restores;
    - written in the middle of an epoch (``partial`` losses): Lightning restores the loader's
      position and continues; :meth:`Run.resume_mid_epoch` restores just before the next batch.

    Returns:
        This process's state when it is to be restored later, else ``None``.
    """
    ranks = state.get("ranks")
    if not ranks:  # written by an earlier release
        return None
    if len(ranks) != trainer.world_size:
        warnings.warn(
            f"Expected a checkpoint written by as many processes as this run has "
            f"({trainer.world_size}). Received: one written by {len(ranks)}; random number "
            f"generators are not restored, so the resumed run will differ from an uninterrupted "
            f"one.",
            UserWarning,
            stacklevel=2,
        )
        return None
    mine = ranks[trainer.global_rank]
    if mine["partial"] or unrecorded or iterated_later:
        return mine
    restore_rng(mine["rng"])
    return None


def check_checkpoint(
    checkpoint: Mapping[str, Any],
    path: str,
    module: torch.nn.Module,
    train_data: object,
    state_key: str,
    skips_validation: str | None = None,
) -> None:
    """Before training: refuses a checkpoint (read from ``path``) whose weights do not fit
    ``module``, and warns when a checkpoint written mid-epoch cannot resume exactly with
    ``train_data`` or with a Lightning version (``skips_validation``, see
    :func:`compat.restarts_epochs`) that does not validate at the end of the resumed epoch."""
    saved = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(saved, Mapping):
        raise ValueError(
            f"Expected a Lightning checkpoint (a dict with the model's 'state_dict'). Received: "
            f"{path}, which has none."
        )
    strict = bool(getattr(module, "strict_loading", True))
    check_weights(module.state_dict(), saved, strict=strict, source=path)
    ours = saved_state(checkpoint, state_key)
    ranks = ours.get("ranks") or [{}]
    partial = ranks[0].get("partial")
    if partial and not (ours.get("stateful_loader") and is_stateful(train_data)):
        warn_inexact_mid_epoch(int(checkpoint.get("epoch", 0)), len(partial), train_data)
    if partial and skips_validation:
        epoch = int(checkpoint.get("epoch", 0)) + 1
        warnings.warn(
            f"Resuming from a checkpoint written in the middle of epoch {epoch} with Lightning "
            f"{skips_validation}, which does not validate at the end of an epoch resumed mid-way: "
            f"epoch {epoch} has no validation values (NaN) in the History, and the epochs after "
            f"it differ from an uninterrupted run. Upgrade to pytorch-lightning (or lightning) "
            f">= 2.5 for exact mid-epoch resumes, or resume from a checkpoint written at the end "
            f"of an epoch.",
            UserWarning,
            stacklevel=3,
        )
