"""Element-wise and low-rank transforms of normalizing flows (PyBlaze 2.x's semantics).

Each ``forward(z [N, D])`` returns ``(y [N, D], log_det [N])``. The formulas are those of the
papers named in each class; initialisations and parameter names follow PyBlaze 2.3.2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_dim(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Expected {name} to be an int >= 1. Received: {value!r}.")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"Expected {name} to be a positive number. Received: {value!r}.")


class _Transform(nn.Module):
    """A transform of dimension ``dim`` (``None``: any dimension)."""

    def __init__(self, dim: int | None) -> None:
        super().__init__()
        if dim is not None:
            _check_dim("dim", dim)
        self.dim = dim

    def extra_repr(self) -> str:
        return "" if self.dim is None else f"dim={self.dim}"


class AffineTransform(_Transform):
    """``y = exp(log_alpha) * z + beta``, element-wise; ``log_det = sum(log_alpha)``.

    Both parameters start uniform on ``[0, 1)``.

    Example:
        >>> y, log_det = AffineTransform(3)(torch.randn(4, 3))
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.log_alpha = nn.Parameter(torch.empty(dim))
        self.beta = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draws both parameters uniformly from ``[0, 1)``."""
        nn.init.uniform_(self.log_alpha)
        nn.init.uniform_(self.beta)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        y = z * self.log_alpha.exp() + self.beta
        return y, self.log_alpha.sum().expand(z.size(0))


class PlanarTransform(_Transform):
    """Planar flow (Rezende and Mohamed, 2015): ``y = z + u' tanh(w.z + b)``.

    ``u'`` is ``u`` moved along ``w`` so that ``w.u' >= -1`` (``w.u' = softplus(w.u) - 1``),
    which keeps the map invertible; ``log_det = log|1 + (1 - tanh^2(w.z + b)) w.u'|``.

    Example:
        >>> y, log_det = PlanarTransform(2)(torch.randn(4, 2))
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.u = nn.Parameter(torch.empty(dim))
        self.w = nn.Parameter(torch.empty(dim))
        self.bias = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draws every parameter uniformly from ``[-1/sqrt(dim), 1/sqrt(dim))``."""
        bound = 1 / math.sqrt(self.dim)
        for parameter in (self.u, self.w, self.bias):
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        wu = self.w @ self.u
        u_hat = self.u + (F.softplus(wu) - 1 - wu) * self.w / (self.w * self.w).sum()
        activation = torch.tanh(z @ self.w + self.bias)  # [N]
        y = z + activation[:, None] * u_hat
        slope = 1 - activation * activation  # tanh'
        log_det = (1 + slope * (self.w @ u_hat)).abs().log()
        return y, log_det


class RadialTransform(_Transform):
    """Radial flow (Rezende and Mohamed, 2015): ``y = z + beta h(r) (z - z0)`` with
    ``r = |z - z0|``, ``h(r) = 1 / (alpha + r)``.

    ``alpha = softplus(alpha')`` and ``beta = softplus(beta') - alpha`` keep it invertible;
    ``log_det = (D - 1) log(1 + beta h) + log(1 + beta h - beta h^2 r)``.

    Example:
        >>> y, log_det = RadialTransform(2)(torch.randn(4, 2))
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.reference = nn.Parameter(torch.empty(dim))
        self.alpha_prime = nn.Parameter(torch.empty(1))
        self.beta_prime = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draws every parameter uniformly from ``[-1/sqrt(dim), 1/sqrt(dim))``."""
        bound = 1 / math.sqrt(self.dim)
        for parameter in (self.reference, self.alpha_prime, self.beta_prime):
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        alpha = F.softplus(self.alpha_prime)
        beta = F.softplus(self.beta_prime) - alpha
        offset = z - self.reference  # [N, D]
        r = offset.norm(dim=-1, keepdim=True)  # [N, 1]
        h = 1 / (alpha + r)
        y = z + beta * h * offset
        log_det = (self.dim - 1) * torch.log1p(beta * h) + torch.log1p(beta * h - beta * h * h * r)
        return y, log_det.view(-1)


class BatchNormTransform1d(_Transform):
    """Batch normalisation as a flow layer (Dinh et al., 2017), with a learned scale
    ``exp(log_gamma)`` and shift ``beta``.

    In training it normalises with the batch's mean and unbiased variance and updates the
    running statistics as PyBlaze does: ``running = momentum * running + (1 - momentum) * batch``
    (note: the opposite weighting of ``torch.nn.BatchNorm1d``'s momentum). In eval mode it uses
    the running statistics; rows whose output is not finite become zeros with
    ``log_det = -inf`` (a density of 0).

    Args:
        dim: The input dimension.
        eps: Added to the variance.
        momentum: The weight of the old running statistics.

    Example:
        >>> y, log_det = BatchNormTransform1d(2)(torch.randn(8, 2))
    """

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(dim)
        self.eps = eps
        self.momentum = momentum
        self.log_gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def reset_parameters(self) -> None:
        """Sets the scale to 1 and the shift to 0."""
        nn.init.zeros_(self.log_gamma)
        nn.init.zeros_(self.beta)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if self.training:
            mean, var = z.mean(0), z.var(0, unbiased=True)
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)
                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var)
        else:
            mean, var = self.running_mean, self.running_var
        std = (var + self.eps).sqrt()
        y = (z - mean) / std * self.log_gamma.exp() + self.beta
        log_det = (self.log_gamma - std.log()).sum().repeat(z.size(0))
        if not self.training:
            impossible = ~torch.isfinite(y).all(dim=1)
            y = y.masked_fill(impossible[:, None], 0.0)
            log_det = log_det.masked_fill(impossible, -math.inf)
        return y, log_det


class LeakyReLUTransform(_Transform):
    """``y = z`` for ``z >= 0``, else ``negative_slope * z``; each negative entry adds
    ``log(negative_slope)`` to the log-determinant.

    Example:
        >>> LeakyReLUTransform(0.5)(torch.tensor([[1.0, -2.0]]))
        (tensor([[ 1., -1.]]), tensor([-0.6931]))
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(None)
        _check_positive("negative_slope", negative_slope)
        self.negative_slope = negative_slope
        self.log_det_factor = math.log(negative_slope)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        negative = z < 0
        y = torch.where(negative, self.negative_slope * z, z)
        log_det = negative.to(z.dtype).sum(-1) * self.log_det_factor
        return y, log_det


class PReLUTransform(_Transform):
    """A leaky ReLU whose slope ``softplus(weight') + minimum`` is learned (one slope, or one per
    dimension); the slope stays above ``minimum``, so the map stays invertible.

    Args:
        num_parameters: 1, or the flow's dimension for one slope per dimension.
        init: The initial value of ``weight'`` (positive).
        minimum: The smallest slope (positive).

    Example:
        >>> y, log_det = PReLUTransform()(torch.randn(4, 2))
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, minimum: float = 0.01) -> None:
        super().__init__(None)
        _check_dim("num_parameters", num_parameters)
        _check_positive("init", init)
        _check_positive("minimum", minimum)
        self.init = init
        self.minimum = minimum
        self.weight_prime = nn.Parameter(torch.full((num_parameters,), float(init)))

    def reset_parameters(self) -> None:
        """Sets ``weight'`` back to ``init``."""
        nn.init.constant_(self.weight_prime, self.init)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        slope = F.softplus(self.weight_prime) + self.minimum
        negative = z < 0
        y = torch.where(negative, slope * z, z)
        log_det = torch.where(negative, slope.log().expand_as(z), torch.zeros_like(z)).sum(-1)
        return y, log_det


class FlipTransform1d(_Transform):
    """Reverses the order of the features (log-determinant 0), e.g. between coupling layers.

    Example:
        >>> FlipTransform1d()(torch.tensor([[1.0, 2.0]]))
        (tensor([[2., 1.]]), tensor([0.]))
    """

    def __init__(self) -> None:
        super().__init__(None)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z.flip(-1), z.new_zeros(z.size(0))
