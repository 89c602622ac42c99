"""Before resuming: the checkpoint's optimizers must be the call's (class and parameter groups)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def _options(group: Mapping[str, Any]) -> set[str]:
    return {key for key in group if key != "params"}


def _describe(groups: Sequence[Mapping[str, Any]]) -> str:
    sizes = ", ".join(str(len(group.get("params", []))) for group in groups)
    options = sorted(set().union(*(_options(group) for group in groups))) if groups else []
    return f"{len(groups)} parameter group(s) of {sizes} tensors, options {options}"


def check_optimizers(
    checkpoint: Mapping[str, Any], optimizers: Sequence[torch.optim.Optimizer], path: str
) -> None:
    """Refuses, before anything is loaded, a checkpoint whose optimizer states do not fit the
    optimizers the call trains with: another number of optimizers, another kind (its parameter
    groups' options: SGD's ``momentum`` against Adam's ``betas``), or other parameter groups.
    Lightning would otherwise load the weights and fail at the first step (``KeyError: 'betas'``).

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> sgd = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> check_optimizers({"optimizer_states": [sgd.state_dict()]}, [sgd], "last.ckpt")
    """
    states = checkpoint.get("optimizer_states")
    if not optimizers or not isinstance(states, list):
        return
    if len(states) != len(optimizers):
        raise ValueError(
            f"Expected a checkpoint with {len(optimizers)} optimizer state(s), as this fit trains "
            f"with {len(optimizers)}. Received: {path}, with {len(states)}. Nothing was loaded; "
            f"resume with the optimizers the checkpoint was written with."
        )
    for index, (state, optimizer) in enumerate(zip(states, optimizers, strict=True)):
        saved = state.get("param_groups", []) if isinstance(state, Mapping) else []
        ours = optimizer.state_dict()["param_groups"]
        same_groups = len(saved) == len(ours) and all(
            len(a.get("params", [])) == len(b["params"]) for a, b in zip(saved, ours, strict=True)
        )
        same_kind = all(_options(a) == _options(b) for a, b in zip(saved, ours, strict=False))
        if not (same_groups and same_kind):
            raise ValueError(
                f"Expected the checkpoint's optimizer {index} to be of the kind and shape of the "
                f"call's {type(optimizer).__name__} ({_describe(ours)}). Received: {path}, whose "
                f"optimizer {index} has {_describe(saved)}. Nothing was loaded; the model's "
                f"weights are unchanged. Resume with the optimizer the checkpoint was written "
                f"with (e.g. the same class over model.parameters())."
            )
