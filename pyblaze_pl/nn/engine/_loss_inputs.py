"""Validation metrics over any number of loss inputs (PyBlaze 2.x's multi-input losses).

Validation hands metrics one ``(y_pred, y_true)`` pair per batch. A loss of more inputs, such
as a VAE's ``VAELoss(x_pred, mu, logvar, x)``, gets them all through a pair: the engine's
``eval_batch`` packs the batch's loss inputs into one tensor ``[N, F]`` (each input flattened
per sample) with an empty ``[N, 0]`` tensor as ``y_true``, and the loss and every metric are
wrapped in :class:`AllInputs`, which unpacks the concatenated tensor and calls the function with
every input, once on the whole validation set (as PyBlaze 2.x called its metrics). Packing is
exact: every input keeps its dtype (a common dtype holds all of them losslessly).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor


def _common_dtype(dtypes: list[torch.dtype]) -> torch.dtype:
    floating = [d for d in dtypes if d.is_floating_point]
    if not floating:
        return torch.int64
    if len(floating) < len(dtypes):  # integers next to floats: float64 holds both exactly
        return torch.float64
    result = floating[0]
    for dtype in floating[1:]:
        result = torch.promote_types(result, dtype)
    return result


class LossInputs:
    """Packs the loss inputs of a batch into one tensor and back; remembers their layout.

    Example:
        >>> packer = LossInputs()
        >>> packed, marker = packer.pack((torch.zeros(2, 3), torch.ones(2)))
        >>> packed.shape, marker.shape, [t.shape for t in packer.unpack(packed)]
        (torch.Size([2, 4]), torch.Size([2, 0]), [torch.Size([2, 3]), torch.Size([2])])
    """

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.dtypes: list[torch.dtype] = []

    def pack(self, values: tuple[Any, ...]) -> tuple[Tensor, Tensor]:
        """``(packed [N, F], empty [N, 0])`` for the loss inputs ``values`` (``[N, ...]`` each)."""
        for i, value in enumerate(values):
            if not isinstance(value, Tensor) or value.dim() == 0:
                shown = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise TypeError(
                    f"Expected every loss input to be a tensor [N, ...] with one row per sample "
                    f"for validation. Received: input {i} = {shown}."
                )
        size = values[0].size(0)
        self.shapes = [tuple(v.shape[1:]) for v in values]
        self.dtypes = [v.dtype for v in values]
        dtype = _common_dtype(self.dtypes)
        flat = [v.detach().reshape(size, -1).to(dtype) for v in values]
        return torch.cat(flat, dim=1), flat[0].new_empty(size, 0)

    def unpack(self, packed: Tensor) -> tuple[Tensor, ...]:
        """The loss inputs again, from ``packed`` (any number of rows)."""
        widths = [int(torch.Size(shape).numel()) for shape in self.shapes]
        pieces = packed.split(widths, dim=1)
        return tuple(
            piece.reshape(packed.size(0), *shape).to(dtype)
            for piece, shape, dtype in zip(pieces, self.shapes, self.dtypes, strict=True)
        )


class AllInputs:
    """A loss or metric that receives every loss input in validation, ``fn(*inputs)``; see the
    module. Calling it with ``(packed, marker)`` unpacks the inputs.

    Args:
        fn: The loss or metric function.
        packer: The engine's :class:`LossInputs`, which knows the layout.
    """

    def __init__(self, fn: Callable[..., Any], packer: LossInputs) -> None:
        self.fn = fn
        self.packer = packer

    def __call__(self, packed: Tensor, marker: Tensor) -> Any:
        return self.fn(*self.packer.unpack(packed))

    def __repr__(self) -> str:
        return repr(self.fn)


def wrap_metrics(
    metrics: Mapping[str, object] | None, packer: LossInputs
) -> dict[str, object] | None:
    """Every metric wrapped in :class:`AllInputs`; torchmetrics objects, which cannot receive
    several inputs, are refused before anything runs."""
    if metrics is None or not isinstance(metrics, Mapping):
        return metrics  # type: ignore[return-value]  # the engine's own checks name the error
    wrapped: dict[str, object] = {}
    for name, metric in metrics.items():
        if hasattr(metric, "update") and hasattr(metric, "compute"):
            raise TypeError(
                f"Expected metrics[{name!r}] to be a function of all loss inputs (as PyBlaze 2.x "
                f"calls it: model outputs, then inputs). Received: a torchmetrics "
                f"{type(metric).__name__}, which takes (preds, target) only; wrap it in a "
                f"function of the loss inputs."
            )
        wrapped[name] = AllInputs(metric, packer) if callable(metric) else metric
    return wrapped


def unwrap(fn: Any) -> Any:
    """The function inside an :class:`AllInputs` (else ``fn``)."""
    return fn.fn if isinstance(fn, AllInputs) else fn
