"""Losses of generative models (PyBlaze 2.x): flows, VAEs and Wasserstein GANs.

- :class:`TransformedNormalLoss`, :class:`TransformedGmmLoss`: the negative log-likelihood of
  data under a normalizing flow, ``(z, log_det) -> NLL``.
- :class:`VAELoss`: reconstruction error plus the KL divergence of a Gaussian encoder.
- :class:`WassersteinLossGenerator`, :class:`WassersteinLossCritic`, :class:`GradientPenalty`:
  the losses of a WGAN (``xnn.WGANEngine``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyblaze_pl.nn.functional import log_prob_standard_gmm, log_prob_standard_normal

__all__ = [
    "GradientPenalty",
    "TransformedGmmLoss",
    "TransformedNormalLoss",
    "VAELoss",
    "WassersteinLossCritic",
    "WassersteinLossGenerator",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: object) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Expected reduction to be one of {_REDUCTIONS}. Received: {reduction!r}.")


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


class TransformedNormalLoss(nn.Module):
    """Negative log-likelihood of data that a flow mapped to ``z`` with log-determinant
    ``log_det``, under a standard normal base distribution:
    ``-(log N(z; 0, I) + log_det)``.

    Args:
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (one value per sample).

    Example:
        >>> loss = TransformedNormalLoss()
        >>> loss(torch.zeros(1, 2), torch.zeros(1))
        tensor(1.8379)
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, z: Tensor, log_det: Tensor) -> Tensor:
        return _reduce(-log_prob_standard_normal(z) - log_det, self.reduction)


class TransformedGmmLoss(nn.Module):
    """Like :class:`TransformedNormalLoss`, with an equally weighted mixture of unit-variance
    Gaussians at ``means [M, D]`` as base distribution.

    Args:
        means: The component means ``[M, D]``.
        trainable: Learn the means (a parameter) instead of keeping them fixed (a buffer).
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.

    Example:
        >>> loss = TransformedGmmLoss(torch.zeros(3, 2))
        >>> loss(torch.zeros(1, 2), torch.zeros(1))
        tensor(1.8379)
    """

    def __init__(self, means: Tensor, trainable: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        if not isinstance(means, Tensor) or means.dim() != 2:
            shown = tuple(means.shape) if isinstance(means, Tensor) else type(means).__name__
            raise ValueError(f"Expected means to be a tensor [M, D]. Received: {shown}.")
        if trainable:
            self.means = nn.Parameter(means)
        else:
            self.register_buffer("means", means)
        self.reduction = reduction

    def forward(self, z: Tensor, log_det: Tensor) -> Tensor:
        return _reduce(-log_prob_standard_gmm(z, self.means) - log_det, self.reduction)


class VAELoss(nn.Module):
    """The negative evidence lower bound of a VAE with a Gaussian encoder (Kingma and Welling,
    2014): per sample, the reconstruction loss summed over all but the batch dimension plus
    ``KL(N(mu, exp(logvar)) || N(0, I)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar))``; the mean
    over the batch.

    Args:
        loss: The reconstruction loss ``(x_pred, x_true)`` with ``reduction='none'`` (e.g.
            ``nn.BCELoss(reduction='none')``).

    Example:
        >>> vae_loss = VAELoss(nn.MSELoss(reduction="none"))
        >>> vae_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 3))
        tensor(3.)
    """

    def __init__(self, loss: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        if not callable(loss):
            raise TypeError(
                f"Expected loss to be a callable (x_pred, x_true) -> Tensor with "
                f"reduction='none'. Received: {type(loss).__name__}."
            )
        if getattr(loss, "reduction", "none") != "none":
            raise ValueError(
                f"Expected a reconstruction loss with reduction='none' (VAELoss sums it per "
                f"sample). Received: {type(loss).__name__}(reduction={loss.reduction!r})."
            )
        self.loss = loss

    def forward(self, x_pred: Tensor, mu: Tensor, logvar: Tensor, x_true: Tensor) -> Tensor:
        reconstruction = self.loss(x_pred, x_true).flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum(-1)
        return (reconstruction + kl).mean()


class GradientPenalty(nn.Module):
    """The gradient penalty of WGAN-GP (Gulrajani et al., 2017):
    ``coefficient * mean((|grad module(x_hat)| - 1)^2)`` at random interpolations ``x_hat`` of
    fake and real samples; with ``lipschitz=True`` only norms above 1 are penalised (Petzka et
    al., 2018).

    Interpolation weights are drawn uniformly per sample from torch's global generator.

    Args:
        module: The critic whose gradient norm is penalised.
        coefficient: The penalty's weight.
        lipschitz: Penalise only gradient norms greater than 1.

    Example:
        >>> critic = nn.Linear(2, 1)
        >>> penalty = GradientPenalty(critic)(torch.randn(4, 2), torch.randn(4, 2))
    """

    def __init__(self, module: nn.Module, coefficient: float = 10, lipschitz: bool = False) -> None:
        super().__init__()
        if not callable(module):
            raise TypeError(f"Expected module to be a callable. Received: {module!r}.")
        self.module = module
        self.coefficient = coefficient
        self.lipschitz = lipschitz

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        x_hat, out = self.interpolate(fake, real)
        (gradient,) = torch.autograd.grad(
            out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True, retain_graph=True
        )
        excess = gradient.reshape(gradient.size(0), -1).norm(2, dim=1) - 1
        if self.lipschitz:
            excess = F.relu(excess)
        return self.coefficient * (excess * excess).mean()

    def interpolate(self, fake: Tensor, real: Tensor) -> tuple[Tensor, Tensor]:
        """Random points between ``fake`` and ``real`` (per sample), and the module's output
        there. Override for inputs that are not interpolated along the batch dimension.

        Returns:
            The interpolations (requiring gradients) and the module's output for them.
        """
        shape = (fake.size(0),) + (1,) * (fake.dim() - 1)
        alpha = torch.empty(shape, dtype=fake.dtype, device=fake.device).uniform_(0.0, 1.0)
        x_hat = (alpha * fake + (1 - alpha) * real).requires_grad_()
        return x_hat, self.module(x_hat)


class WassersteinLossGenerator(nn.Module):
    """The generator's WGAN loss: ``-mean(critic(fake))``.

    Example:
        >>> WassersteinLossGenerator()(torch.tensor([1.0, 3.0]))
        tensor(-2.)
    """

    def forward(self, out: Tensor) -> Tensor:
        return -out.mean()


class WassersteinLossCritic(nn.Module):
    """The critic's WGAN loss ``mean(critic(fake)) - mean(critic(real))``, plus an optional
    :class:`GradientPenalty`. Returns ``(loss, em_distance)``: the estimated Earth mover's
    distance is the negated loss without the penalty, detached.

    Args:
        gradient_penalty: Called as ``gradient_penalty(fake_in, real_in)`` if given.

    Example:
        >>> loss, em = WassersteinLossCritic()(torch.tensor([0.0]), torch.tensor([2.0]))
        >>> loss, em
        (tensor(-2.), tensor(2.))
    """

    def __init__(self, gradient_penalty: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.gradient_penalty = gradient_penalty

    def forward(self, out_fake: Tensor, out_real: Tensor, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        loss = out_fake.mean() - out_real.mean()
        em_distance = -loss.detach()
        if self.gradient_penalty is not None:
            if len(inputs) != 2:
                raise ValueError(
                    f"Expected the critic's inputs (fake_in, real_in) after its outputs, for the "
                    f"gradient penalty. Received: {len(inputs)} extra values."
                )
            loss = loss + self.gradient_penalty(*inputs)
        return loss, em_distance
