"""PyBlaze's helpers for generative models, part of :mod:`pyblaze_pl.nn.functional`: noise,
straight-through estimators and standard densities."""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# --- generative-model helpers (PyBlaze v1 pyblaze/nn/functional/{random,gumbel}.py, 2.x
# pyblaze/nn/functional/{softgrad,densities}.py) ----------------------------------------------

_NOISE_TYPES = ("normal", "uniform")


def generate_noise(shape: Sequence[int] | int, noise_type: str = "normal") -> Tensor:
    """Noise of the given shape, e.g. the input of a GAN's generator (PyBlaze v1).

    Draws from the global random generator exactly what PyBlaze v1 drew
    (``torch.distributions.Normal(0, 1).sample(shape)`` / ``Uniform(-1, 1).sample(shape)``).

    Args:
        shape: The shape of the noise (a sequence of ints or one int).
        noise_type: ``'normal'`` (standard normal) or ``'uniform'`` (uniform on ``[-1, 1)``).

    Returns:
        A float tensor of the given shape (on the CPU).

    Example:
        >>> X.generate_noise([64, 100]).shape
        torch.Size([64, 100])
    """
    if noise_type == "normal":
        return torch.randn(shape)
    if noise_type == "uniform":
        return torch.rand(shape) * 2 - 1
    raise ValueError(
        f"Expected noise_type to be one of {list(_NOISE_TYPES)}. Received: {noise_type!r}."
    )


def gumbel_softmax(
    logits: Tensor, tau: float = 1, hard: bool = False, eps: float = 1e-10, dim: int = -1
) -> Tensor:
    """Samples from the Gumbel-softmax distribution, PyBlaze's numerically stable variant of
    ``torch.nn.functional.gumbel_softmax``.

    The Gumbel noise is ``-log(eps - log(u + eps))`` with ``u ~ U[0, 1)`` (no ``log(0)``);
    ``hard=True`` returns one-hot samples whose gradient is the soft sample's
    (straight-through estimator). Same signature and draws as PyBlaze v1 and 2.x.

    Args:
        logits: Unnormalised log-probabilities.
        tau: The temperature.
        hard: Whether to return one-hot samples.
        eps: The constant that keeps the logarithms finite.
        dim: The dimension of the categories.

    Returns:
        A tensor shaped like ``logits`` that sums to 1 along ``dim``.

    Example:
        >>> X.gumbel_softmax(torch.zeros(2, 3), hard=True).sum(-1)
        tensor([1., 1.])
    """
    uniform = torch.empty_like(logits).uniform_(0.0, 1.0)
    gumbel = -torch.log(eps - torch.log(uniform + eps))
    y_soft = F.softmax((logits + gumbel) / tau, dim=dim)
    if not hard:
        return y_soft
    index = y_soft.max(dim, keepdim=True)[1]
    y_hard = torch.zeros_like(logits).scatter_(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft


def softround(x: Tensor) -> Tensor:
    """Rounds ``x`` in the forward pass and passes gradients through unchanged (PyBlaze 2.x).

    Example:
        >>> X.softround(torch.tensor([0.4, 1.6]))
        tensor([0., 2.])
    """
    detached = x.detach()
    return detached.round() - detached + x


def log_prob_standard_normal(x: Tensor) -> Tensor:
    """Log-density of each row of ``x`` under a standard normal distribution (PyBlaze 2.x).

    Args:
        x: Samples ``[N, D]``.

    Returns:
        The log-densities ``[N]``.

    Example:
        >>> X.log_prob_standard_normal(torch.zeros(1, 2))
        tensor([-1.8379])
    """
    return -0.5 * (x.size(1) * math.log(2 * math.pi) + (x * x).sum(1))


def log_prob_standard_gmm(x: Tensor, means: Tensor) -> Tensor:
    """Log-density of each row of ``x`` under an equally weighted mixture of standard normal
    distributions with the given means (PyBlaze 2.x).

    Args:
        x: Samples ``[N, D]``.
        means: The means of the components ``[M, D]``.

    Returns:
        The log-densities ``[N]``.

    Example:
        >>> X.log_prob_standard_gmm(torch.zeros(1, 2), torch.zeros(3, 2))
        tensor([-1.8379])
    """
    # |x - m|^2 expanded as PyBlaze does: no [N, M, D] intermediate.
    xx = (x * x).sum(1, keepdim=True)  # [N, 1]
    mm = (means * means).sum(1)  # [M]
    log_probs = -0.5 * (x.size(1) * math.log(2 * math.pi) + xx - 2 * x @ means.t() + mm)
    return torch.logsumexp(log_probs - math.log(means.size(0)), dim=1)
