"""Coupling and autoregressive transforms, and :class:`MADE` (PyBlaze 2.x's semantics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyblaze_pl.nn.flows.transforms import _check_dim, _Transform


def _degrees(dims: tuple[int, ...]) -> list[Tensor]:
    """MADE's sequential degrees (Germain et al., 2015): inputs ``1..D``, hidden units cycling
    through ``1..D-1``, outputs ``0..D-1`` repeated (each output block sees earlier inputs only).
    """
    d = dims[0]
    hidden = [torch.arange(size) % max(d - 1, 1) + 1 for size in dims[1:-1]]
    return [torch.arange(d) + 1, *hidden, torch.arange(dims[-1]) % d]


class _MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 ``mask`` buffer."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al., 2015): an MLP whose
    output block ``k`` depends only on inputs ``1..k-1`` (in every block of ``D`` outputs).

    Args:
        *dims: Input dimension ``D``, the hidden dimensions (at least one), and the output
            dimension (a multiple of ``D``).
        activation: The module applied after every hidden layer (shared).

    Example:
        >>> made = MADE(2, 16, 4)
        >>> made(torch.randn(5, 2)).shape
        torch.Size([5, 4])
    """

    def __init__(self, *dims: int, activation: nn.Module | None = None) -> None:
        super().__init__()
        if len(dims) < 3:
            raise ValueError(
                f"Expected at least 3 dimensions (input, hidden..., output). Received: {dims}."
            )
        for i, dim in enumerate(dims):
            _check_dim(f"dims[{i}]", dim)
        if dims[-1] % dims[0] != 0:
            raise ValueError(
                f"Expected the output dimension to be a multiple of the input dimension "
                f"{dims[0]}. Received: {dims[-1]}."
            )
        activation = nn.LeakyReLU() if activation is None else activation
        self.dims = dims
        degrees = _degrees(dims)
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            if i > 0:
                layers.append(activation)
            mask = (degrees[i + 1][:, None] >= degrees[i][None, :]).float()
            layers.append(_MaskedLinear(dims[i], dims[i + 1], mask))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


def _mean_and_log_scale(output: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    if isinstance(output, (tuple, list)):
        if len(output) != 2:
            raise ValueError(
                f"Expected the coupling net to return (mean, log_scale) or one tensor to split "
                f"in two. Received: a {type(output).__name__} of {len(output)} values."
            )
        return output[0], output[1]
    mean, log_scale = output.chunk(2, dim=1)
    return mean, log_scale


class AffineCouplingTransform1d(_Transform):
    """Affine coupling (Real NVP, Dinh et al., 2017): one part of ``z`` stays fixed, the other
    is scaled by ``exp(s)`` and shifted by ``m``, where ``(m, s) = net(fixed part)``;
    ``log_det = sum(s)``.

    Without ``reverse`` the first ``fixed_dim`` features stay fixed (PyBlaze 2.3.2); with
    ``reverse=True`` the first ``fixed_dim`` features are transformed and the others stay fixed
    (PyBlaze's earlier ``reverse=`` flag, which the notebooks use to alternate the parts).

    Args:
        dim: The input dimension.
        fixed_dim: The size of the first part (``< dim``): fixed, or with ``reverse`` the part
            that is transformed.
        net: Maps the fixed part (with ``condition`` appended, if given) to one tensor that is
            split in two along dim 1, ``(mean, log_scale)``, or to that pair directly.
        constrain_scale: Apply ``tanh`` to the log-scale (for deep flows without batch norm).
        reverse: Transform the first ``fixed_dim`` features instead of keeping them.

    Example:
        >>> net = nn.Linear(1, 2)
        >>> y, log_det = AffineCouplingTransform1d(2, 1, net)(torch.randn(4, 2))
    """

    def __init__(
        self,
        dim: int,
        fixed_dim: int,
        net: nn.Module,
        constrain_scale: bool = False,
        reverse: bool = False,
    ) -> None:
        super().__init__(dim)
        _check_dim("fixed_dim", fixed_dim)
        if fixed_dim >= dim:
            raise ValueError(
                f"Expected fixed_dim to be smaller than dim={dim}. Received: {fixed_dim}."
            )
        self.fixed_dim = fixed_dim
        self.constrain_scale = constrain_scale
        self.reverse = reverse
        self.net = net

    def forward(self, z: Tensor, condition: Tensor | None = None) -> tuple[Tensor, Tensor]:
        first, second = z.split([self.fixed_dim, self.dim - self.fixed_dim], dim=-1)
        fixed, free = (second, first) if self.reverse else (first, second)
        inputs = fixed if condition is None else torch.cat([fixed, condition], dim=1)
        mean, log_scale = _mean_and_log_scale(self.net(inputs))
        if self.constrain_scale:
            log_scale = torch.tanh(log_scale)
        moved = free * log_scale.exp() + mean
        y = torch.cat([moved, fixed] if self.reverse else [fixed, moved], dim=-1)
        return y, log_scale.sum(-1)


class MaskedAutoregressiveTransform1d(_Transform):
    """Masked autoregressive flow layer (Papamakarios et al., 2017), backed by a :class:`MADE`
    ``net`` that gives ``(mean, s)`` per feature: ``y = (z - mean) * exp(-s)``,
    ``log_det = -sum(s)`` (``s`` clamped to ``[-30, 30]`` in the scale only, as PyBlaze).

    Args:
        dim: The input dimension.
        *hidden_dims: The hidden dimensions of the MADE.
        activation: The MADE's activation (default ``nn.LeakyReLU()``).
        constrain_scale: Apply ``tanh`` to ``s``.

    Example:
        >>> y, log_det = MaskedAutoregressiveTransform1d(2, 8)(torch.randn(4, 2))
    """

    def __init__(
        self,
        dim: int,
        *hidden_dims: int,
        activation: nn.Module | None = None,
        constrain_scale: bool = False,
    ) -> None:
        super().__init__(dim)
        self.constrain_scale = constrain_scale
        self.net = MADE(dim, *hidden_dims, 2 * dim, activation=activation)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_scale = self.net(z).chunk(2, dim=1)
        if self.constrain_scale:
            log_scale = torch.tanh(log_scale)
        y = (z - mean) * torch.exp(-log_scale.clamp(-30.0, 30.0))
        return y, -log_scale.sum(-1)
