"""Infinite data sets of random noise, e.g. the input of a GAN's generator (PyBlaze v1 and 2.x)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution
from torch.utils.data import IterableDataset

from pyblaze_pl.nn._generative_functional import _NOISE_TYPES, generate_noise

__all__ = ["LabeledNoiseDataset", "NoiseDataset"]


class NoiseDataset(IterableDataset):
    """An endless stream of noise vectors (PyBlaze v1: ``NoiseDataset(noise_type, dimension)``).

    Each item is ``X.generate_noise([dimension], noise_type)``, drawn from torch's global random
    generator (in a DataLoader worker, from the worker's own seed). Batch it with a DataLoader;
    since the stream never ends, bound the epoch, e.g. ``trainer_kwargs={'limit_train_batches':
    n}``, or zip it with a finite loader.

    Args:
        noise_type: ``'normal'`` (standard normal) or ``'uniform'`` (uniform on ``[-1, 1)``);
            or a ``torch.distributions.Distribution`` to sample each item from, as PyBlaze's
            notebooks write it: ``NoiseDataset(Normal(torch.zeros(2), torch.ones(2)))``.
        dimension: The length of each noise vector.
        distribution: A ``torch.distributions.Distribution`` to sample each item from instead
            (PyBlaze 2.x's argument); ``noise_type`` and ``dimension`` are then ignored.
        latent_dim: PyBlaze 2.x's ``NoiseDataset(latent_dim=n)``: items from
            ``Normal(zeros(n), ones(n))``, as 2.x draws them.

    Example:
        >>> loader = NoiseDataset("normal", 100).loader(batch_size=64)
        >>> next(iter(loader)).shape
        torch.Size([64, 100])
    """

    def __init__(
        self,
        noise_type: str | Distribution = "normal",
        dimension: int = 2,
        *,
        distribution: Distribution | None = None,
        latent_dim: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(noise_type, Distribution):  # NoiseDataset(distribution), as the notebooks
            if distribution is not None:
                raise TypeError(
                    f"Expected one distribution. Received: {noise_type!r} (positional) and "
                    f"distribution={distribution!r}."
                )
            noise_type, distribution = "normal", noise_type
        if latent_dim is not None and distribution is None:  # PyBlaze 2.x's keyword form
            distribution = torch.distributions.Normal(
                torch.zeros(latent_dim), torch.ones(latent_dim)
            )
        if distribution is None and noise_type not in _NOISE_TYPES:
            hint = ""
            if isinstance(noise_type, int):
                hint = (
                    f" PyBlaze 2.x's NoiseDataset(latent_dim) is "
                    f"NoiseDataset('normal', {noise_type}) here."
                )
            raise ValueError(
                f"Expected noise_type to be one of {list(_NOISE_TYPES)}. "
                f"Received: {noise_type!r}.{hint}"
            )
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise ValueError(f"Expected dimension to be an int >= 1. Received: {dimension!r}.")
        self.noise_type = noise_type
        self.dimension = dimension
        self.distribution = distribution

    def sample(self) -> Tensor:
        """Draws one item."""
        if self.distribution is not None:
            return self.distribution.sample()
        return generate_noise([self.dimension], self.noise_type)

    def __iter__(self) -> Iterator[Tensor]:
        while True:
            yield self.sample()


class LabeledNoiseDataset(NoiseDataset):
    """An endless stream of ``(noise, label)`` pairs, e.g. for a class-conditional GAN
    (PyBlaze 2.x).

    Args:
        latent_dim: The length of each standard normal noise vector.
        num_classes: Labels are drawn uniformly from ``0 .. num_classes - 1``.
        distribution: A ``torch.distributions.Distribution`` for the noise instead.
        categorical: A distribution for the labels instead.

    Example:
        >>> noise, label = next(iter(LabeledNoiseDataset(latent_dim=8, num_classes=10)))
        >>> noise.shape, 0 <= int(label) < 10
        (torch.Size([8]), True)
    """

    def __init__(
        self,
        latent_dim: int = 2,
        num_classes: int = 10,
        distribution: Distribution | None = None,
        categorical: Distribution | None = None,
    ) -> None:
        super().__init__("normal", latent_dim, distribution=distribution)
        if categorical is None:
            if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
                raise ValueError(
                    f"Expected num_classes to be an int >= 1. Received: {num_classes!r}."
                )
            categorical = Categorical(torch.full((num_classes,), 1.0 / num_classes))
        self.categorical = categorical

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        while True:
            yield self.sample(), self.categorical.sample()
