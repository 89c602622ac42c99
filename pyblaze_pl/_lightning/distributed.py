"""What multi-process (DDP) runs need beyond Lightning: samples counted once, predictions in
dataset order, a clean exit."""

from __future__ import annotations

import atexit
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DistributedSampler


def unpadded_samples(trainer: Any) -> int | None:
    """How many of this rank's validation samples are real, or None if none are padding.

    Lightning gives each rank a ``DistributedSampler`` that pads the data set by repeating
    samples until its size divides by the world size; the repeats are the last sample of some
    ranks. Rank ``r`` holds ``len(range(r, N, world))`` real samples, then padding. (Samplers
    that do not pad, such as the one Lightning uses in ``validate``, have ``total_size == N``.)
    """
    if trainer.world_size == 1:
        return None
    loader = trainer.val_dataloaders
    loader = loader[0] if isinstance(loader, (list, tuple)) else loader
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, DistributedSampler) or sampler.drop_last:
        return None
    size = len(sampler.dataset)
    if sampler.total_size <= size:
        return None
    return len(range(sampler.rank, size, sampler.num_replicas))


def interleave(parts: list[Any]) -> Any:
    """Merges per-rank outputs of an unrepeated distributed sampler (rank ``r`` holds samples
    ``r, r + world, ...``) into data set order."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        merged = first.new_empty((sum(len(p) for p in parts), *first.shape[1:]))
        for rank, part in enumerate(parts):
            merged[rank :: len(parts)] = part
        return merged
    if isinstance(first, Mapping):
        return {k: interleave([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(interleave(list(items)) for items in zip(*parts, strict=True))
    raise TypeError(
        f"Expected predictions made of tensors (or tuples/dicts of tensors) to merge across "
        f"processes. Received: {type(first).__name__}."
    )


def gather_predictions(local: Any) -> Any:
    """All ranks' predictions, in data set order, on every rank."""
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, local)
    return interleave(parts)


def equal_counts(trainer: Any, count: int) -> None:
    """Raises unless every rank ran ``count`` training batches this epoch."""
    bounds = torch.tensor([count, -count], device=trainer.strategy.root_device)
    torch.distributed.all_reduce(bounds, op=torch.distributed.ReduceOp.MAX)
    most, fewest = bounds.tolist()[0], -bounds.tolist()[1]
    if most != fewest:
        raise RuntimeError(
            f"Expected every process to run the same number of training batches per epoch "
            f"(Lightning's DistributedSampler ensures it). Received: between {fewest} and "
            f"{most} batches."
        )


def destroy_process_group_at_exit() -> None:
    """Makes this process destroy the default process group when the interpreter exits, before it
    shuts down; a no-op without one.

    Lightning leaves a gloo process group alive at exit (it registers this only for NCCL). A gloo
    worker thread can then drop the last reference to the tensor of a finished collective while
    the interpreter shuts down; taking the GIL to free it ends the thread inside a C++ destructor
    and the process aborts with "terminate called without an active exception" (exit code -6),
    which schedulers report as a failed job. ``atexit`` handlers run before the shutdown, so
    destroying the group there joins those threads safely.

    Example:
        >>> destroy_process_group_at_exit()  # after a DDP run; registered once per process
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        atexit.unregister(_destroy_process_group)  # registered once, however many runs
        atexit.register(_destroy_process_group)


# How long the exit handler lets gloo's worker threads take the GIL before joining them.
_DRAIN_SECONDS = 0.1


def _destroy_process_group() -> None:
    """Destroys the default process group, after giving gloo's worker threads the GIL.

    A worker thread that drops the last reference to a finished collective's tensor (one whose
    Python object was already released) takes the GIL to free it. Destroying the group joins the
    workers while holding the GIL, so a worker still waiting for it would wait forever (seen with
    torch 2.4: the process hangs at exit, about one two-node run in six). Sleeping releases the
    GIL; every collective of the run has completed by now, so the workers only finish freeing.
    """
    if torch.distributed.is_initialized():  # unless the script destroyed it itself
        time.sleep(_DRAIN_SECONDS)
        torch.distributed.destroy_process_group()
