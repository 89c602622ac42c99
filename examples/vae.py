"""PyBlaze's VAE notebook on scikit-learn's digits (8x8 images, bundled: nothing is downloaded).

The notebook's calls with only the imports changed: ``xnn.AutoencoderEngine``, ``xnn.VAELoss``,
a validation loss, ``predict(reconstruct=True)`` and decoding noise with
``predict(NoiseDataset(distribution).loader(...), iterations=1)``. Writes the loss curves,
reconstructions and samples to ``--output-dir``.

Usage:
    python examples/vae.py [--epochs N] [--output-dir DIR]
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
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

import pyblaze_pl.nn as xnn

LATENT = 4


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 2 * LATENT))

    def forward(self, x):
        mu, logvar = self.layers(x).chunk(2, dim=-1)
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(LATENT, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid()
        )

    def forward(self, z):
        return self.layers(z)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(self, x):
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # the reparametrisation trick
        return self.decoder(z), mu, logvar


def _grid(images: torch.Tensor, path: Path, title: str) -> None:
    figure, axes = plt.subplots(2, 8, figsize=(8, 2.4))
    for ax, image in zip(axes.flat, images, strict=False):
        ax.imshow(image.view(8, 8).numpy(), cmap="gray_r")
        ax.axis("off")
    figure.suptitle(title)
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> xnn.History:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output-dir", default="runs/vae")
    args = parser.parse_args(argv)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    digits = load_digits()
    images = torch.as_tensor(digits.data, dtype=torch.float32) / 16  # in [0, 1]
    labels = torch.as_tensor(digits.target)
    train_dataset, test_dataset = TensorDataset(images, labels).random_split(0.8, 0.2, seed=0)
    train_loader = train_dataset.loader(batch_size=64, shuffle=True)
    test_loader = test_dataset.loader(batch_size=256)

    model = VAE()
    engine = xnn.AutoencoderEngine(model, expects_data_target=True)
    history = engine.train(
        train_loader,
        val_data=test_loader,
        epochs=args.epochs,
        optimizer=optim.Adam(model.parameters(), lr=1e-3),
        loss=xnn.VAELoss(nn.BCELoss(reduction="none")),
        callbacks=[xnn.EpochProgressLogger()],
        gpu=False,
    )
    history.plot(["train_loss", "val_loss"]).savefig(output / "loss.png")

    reconstructions, _, _ = engine.predict(test_loader, reconstruct=True, gpu=False)
    _grid(torch.cat([images[test_dataset.indices[:8]], reconstructions[:8]]), output / "recon.png",
          "test digits (top) and their reconstructions (bottom)")  # fmt: skip

    noise = xnn.NoiseDataset(D.Normal(torch.zeros(LATENT), torch.ones(LATENT)))
    samples = engine.predict(noise.loader(batch_size=16), iterations=1, gpu=False)
    _grid(samples, output / "samples.png", "decoded noise")
    print(f"Validation loss after {len(history)} epochs: {history.val_loss[-1]:.2f}")
    return history


if __name__ == "__main__":
    main()
