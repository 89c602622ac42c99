"""PyBlaze's normalizing-flows notebook on scikit-learn's 2-D toy sets (generated locally).

The notebook's calls with only the imports changed: a ``xnn.NormalizingFlow`` of affine
coupling layers (alternating ``reverse=``), batch norm and ``xnn.PReLUTransform``, or of
masked autoregressive transforms, trained with ``xnn.MLEEngine(flow, expects_data_target=False)``
and ``xnn.TransformedNormalLoss``. ``pyblaze.plot.density_plot2d`` is replaced by the few lines
of :func:`density_plot2d`. Writes the data and learned densities to ``--output-dir``.

Usage:
    python examples/normalizing_flows.py [--epochs N] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.optim as optim
from sklearn.datasets import make_circles, make_moons
from torch.utils.data import TensorDataset

import pyblaze_pl.nn as xnn


def coupling_flow(depth: int = 4) -> xnn.NormalizingFlow:
    transforms = []
    for i in range(depth):
        net = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 2))
        transforms += [
            xnn.AffineCouplingTransform1d(2, 1, net, constrain_scale=True, reverse=i % 2 == 1),
            xnn.BatchNormTransform1d(2),
            xnn.PReLUTransform(),
        ]
    return xnn.NormalizingFlow(transforms[:-1])


def maf_flow(depth: int = 4) -> xnn.NormalizingFlow:
    transforms = []
    for _ in range(depth):
        transforms += [xnn.MaskedAutoregressiveTransform1d(2, 32, 32), xnn.FlipTransform1d()]
    return xnn.NormalizingFlow(transforms)


def density_plot2d(density, x_range, y_range, ax, steps: int = 100) -> None:
    """Draws ``density`` (a function of points ``[N, 2]``) on a grid (replaces PyBlaze's
    ``pyblaze.plot.density_plot2d``)."""
    xs, ys = torch.linspace(*x_range, steps), torch.linspace(*y_range, steps)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).view(-1, 2)
    with torch.no_grad():
        values = density(grid).view(steps, steps)
    ax.imshow(values.numpy(), origin="lower", extent=(*x_range, *y_range), cmap="viridis")


def train(engine: xnn.MLEEngine, data: torch.Tensor, epochs: int, lr: float = 1e-2) -> xnn.History:
    loader = TensorDataset(data).loader(batch_size=512, shuffle=True)
    return engine.train(
        loader,
        epochs=epochs,
        optimizer=optim.Adam(engine.model.parameters(), lr=lr),
        loss=xnn.TransformedNormalLoss(),
        gpu=False,
    )


def main(argv: list[str] | None = None) -> dict[str, xnn.History]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--output-dir", default="runs/normalizing_flows")
    args = parser.parse_args(argv)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    moons, _ = make_moons(2048, noise=0.05, random_state=0)
    circles, _ = make_circles(2048, noise=0.05, factor=0.5, random_state=0)
    datasets = {
        "moons": (torch.as_tensor(moons, dtype=torch.float32) - torch.tensor([0.5, 0.25])) * 1.5,
        "circles": torch.as_tensor(circles, dtype=torch.float32) * 2,
    }
    flows = {"coupling": coupling_flow, "maf": maf_flow}
    nll = xnn.TransformedNormalLoss(reduction="none")
    figure, axes = plt.subplots(len(flows) + 1, len(datasets), figsize=(8, 12))
    histories = {}
    for column, (data_name, data) in enumerate(datasets.items()):
        axes[0, column].scatter(*data.T, s=1, color="orange")
        axes[0, column].set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), title=data_name)
        for row, (flow_name, make_flow) in enumerate(flows.items(), start=1):
            engine = xnn.MLEEngine(make_flow(), expects_data_target=False)
            history = train(engine, data, args.epochs)
            histories[f"{flow_name}/{data_name}"] = history
            flow = engine.model.eval()
            density = lambda x, flow=flow: (-nll(*flow(x))).exp()  # noqa: E731
            density_plot2d(density, (-2.5, 2.5), (-2.5, 2.5), axes[row, column])
            axes[row, column].set(title=f"{flow_name}: NLL {history.train_loss[-1]:.2f}")
    figure.tight_layout()
    figure.savefig(output / "densities.png")
    plt.close(figure)
    for name, history in histories.items():
        print(f"{name}: final training NLL {history.train_loss[-1]:.3f}")
    return histories


if __name__ == "__main__":
    main()
