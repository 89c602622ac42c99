"""The flow: a chain of invertible transforms whose log-determinants add up."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


class NormalizingFlow(nn.Module):
    """Applies ``transforms`` one after the other (PyBlaze 2.x).

    ``forward(z)`` returns the last transform's output and the sum of every transform's
    log-determinant, ``(y [N, D], log_det [N])``: the inputs of
    :class:`~pyblaze_pl.nn.TransformedNormalLoss`.

    Args:
        transforms: Modules mapping ``z`` to ``(y, log_det)``, all of the same dimension.

    Example:
        >>> flow = NormalizingFlow([AffineTransform(2), PlanarTransform(2)])
        >>> z, log_det = flow(torch.randn(5, 2))
        >>> z.shape, log_det.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(self, transforms: Iterable[nn.Module]) -> None:
        super().__init__()
        transforms = list(transforms)
        for i, transform in enumerate(transforms):
            if not isinstance(transform, nn.Module):
                raise TypeError(
                    f"Expected transforms to be torch.nn.Modules returning (y, log_det). "
                    f"Received: transforms[{i}] = {transform!r} ({type(transform).__name__})."
                )
        self.transforms = nn.ModuleList(transforms)

    def forward(self, z: Tensor, condition: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Transforms ``z [N, D]``; ``condition [N, C]`` goes to every transform (only
        transforms that take one, such as :class:`AffineCouplingTransform1d`, accept it).

        Returns:
            The transformed values ``[N, D]`` and the summed log-determinants ``[N]``.
        """
        extra = {} if condition is None else {"condition": condition}
        total = torch.zeros(z.size(0), device=z.device)
        for transform in self.transforms:
            z, log_det = transform(z, **extra)
            total = total + log_det
        return z, total
