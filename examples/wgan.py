"""PyBlaze's WGAN notebook on scikit-learn's two moons (generated locally: nothing is downloaded).

The notebook's calls with only the imports changed: ``xnn.WGANEngine`` with a generator and a
critic optimizer, ``critic_iterations`` over a ``ZipDataLoader`` of endless noise and real
data, ``xnn.WassersteinLossGenerator``, ``xnn.WassersteinLossCritic`` with a
``xnn.GradientPenalty``, the per-batch EM distance in ``history.batch_em_distance`` and samples
from ``predict(..., iterations=1)``. Writes the EM distance and the samples to ``--output-dir``.

Usage:
    python examples/wgan.py [--epochs N] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.distributions as D
import torch.nn as nn
import torch.optim as optim
from sklearn.datasets import make_moons
from torch.utils.data import TensorDataset

import pyblaze_pl.nn as xnn

LATENT = 2
CRITIC_ITERATIONS = 5


class WGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(
            nn.Linear(LATENT, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
            nn.Linear(64, 2),
        )  # fmt: skip
        self.critic = nn.Sequential(
            nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
            nn.Linear(64, 1),
        )  # fmt: skip


def main(argv: list[str] | None = None) -> xnn.History:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--output-dir", default="runs/wgan")
    args = parser.parse_args(argv)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    points, _ = make_moons(2048, noise=0.05, random_state=0)
    real = TensorDataset(torch.as_tensor(points, dtype=torch.float32))
    real_loader = real.loader(batch_size=64, shuffle=True, drop_last=True)
    noise = xnn.NoiseDataset(D.Normal(torch.zeros(LATENT), torch.ones(LATENT)))
    noise_loader = noise.loader(batch_size=64)
    loader = xnn.ZipDataLoader(noise_loader, real_loader, CRITIC_ITERATIONS + 1, CRITIC_ITERATIONS)

    model = WGAN()
    engine = xnn.WGANEngine(model, expects_data_target=True)
    history = engine.train(
        loader,
        epochs=args.epochs,
        generator_optimizer=optim.Adam(model.generator.parameters(), lr=1e-3, betas=(0.5, 0.9)),
        critic_optimizer=optim.Adam(model.critic.parameters(), lr=1e-3, betas=(0.5, 0.9)),
        generator_loss=xnn.WassersteinLossGenerator(),
        critic_loss=xnn.WassersteinLossCritic(xnn.GradientPenalty(model.critic)),
        critic_iterations=CRITIC_ITERATIONS,
        callbacks=[xnn.EpochProgressLogger()],
        gpu=False,
    )

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(history.batch_em_distance, alpha=0.4, label="per batch")
    per_epoch = len(history.batch_em_distance) // len(history)
    left.plot(
        [(i + 1) * per_epoch - 1 for i in range(len(history))], history.em_distance, label="epoch"
    )
    left.set(title="Estimated EM distance", xlabel="batch")
    left.legend()
    samples = engine.predict(noise.loader(batch_size=1024), iterations=1, gpu=False)
    right.scatter(*real.tensors[0][:1024].T, s=2, label="data")
    right.scatter(*samples.T, s=2, label="generated")
    right.set(title="Samples")
    right.legend()
    figure.savefig(output / "wgan.png")
    plt.close(figure)
    print(f"EM distance in the last epoch: {history.em_distance[-1]:.4f}")
    return history


if __name__ == "__main__":
    main()
