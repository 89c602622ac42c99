"""History.plot: losses and metrics per epoch, drawn without pyplot (no window, no global state)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from pyblaze_pl.nn.results import History

_BATCHES = "micro_train_loss"


def _epoch_axis(ax: Axes) -> None:
    """Labels the x axis "Epoch" with integer ticks from 1 (epoch 1 is the first)."""
    from matplotlib.ticker import MaxNLocator

    class EpochLocator(MaxNLocator):
        def tick_values(self, vmin: float, vmax: float):
            return [t for t in super().tick_values(vmin, vmax) if t >= 1]

    ax.xaxis.set_major_locator(EpochLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("Epoch")
    ax.grid(alpha=0.3)


def plot_history(history: History, keys: Iterable[str] | None = None) -> Figure:
    """Draws ``history``: one panel for the losses (keys ending in ``loss``), one for the other
    metrics, each with a title, axis labels and the epochs 1, 2, ... on the x axis.

    ``micro_train_loss`` (every batch's loss) is drawn at the fraction of its epoch: batch
    ``i = 1..n`` of epoch ``e`` sits at ``e - 1 + i / n``, so the epoch's last batch sits at
    ``e``, with the epoch's values. It is faint next to per-epoch losses.
    """
    from matplotlib.figure import Figure

    valid = history.keys
    # PyBlaze 2.x's per-batch values (WGANEngine's batch_em_distance, ...) only when asked for
    keys = [k for k in valid if not k.startswith("batch_")] if keys is None else list(keys)
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise ValueError(f"Expected History keys to plot. Received: {unknown}. Valid: {valid}.")
    batches = _BATCHES in keys
    losses = [k for k in keys if k.endswith("loss") and k != _BATCHES]
    others = [k for k in keys if not k.endswith("loss")]
    panels = max(bool(losses or batches) + bool(others), 1)
    figure = Figure(figsize=(6.4 * panels, 4.0), dpi=100)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    epochs = range(1, len(history) + 1)

    def draw(ax: Axes, key: str, color: str) -> None:
        if key.startswith("batch_"):  # every batch, at the fraction of its epoch
            ax.plot(_batch_positions(history, key), history[key], color=color, label=key)
        else:
            ax.plot(epochs, history[key], marker="o", color=color, label=key)

    if losses or batches:
        ax = axes[0]
        if batches:
            x = _batch_positions(history, _BATCHES)
            faint = {"alpha": 0.25, "linewidth": 0.8} if losses else {"linewidth": 1.0}
            ax.plot(x, history[_BATCHES], color="C0", label="train_loss per batch", **faint)
        for i, key in enumerate(losses):
            draw(ax, key, f"C{i}")
        if losses:
            ax.set_title("Loss per batch and epoch" if batches else "Loss per epoch")
        else:
            ax.set_title("Training loss per batch")
        ax.set_ylabel("Loss")
        _epoch_axis(ax)
        ax.legend()
    if others:
        ax = axes[-1]
        for i, key in enumerate(others):
            draw(ax, key, f"C{i + len(losses)}")
        ax.set_title("Metrics per epoch")
        ax.set_ylabel("Value")
        _epoch_axis(ax)
        ax.legend()
    figure.tight_layout()
    return figure


def _batch_positions(history: History, key: str) -> list[float]:
    """Batch ``i = 1..n`` of epoch ``e`` at ``e - 1 + i / n``."""
    counts = [len(record.get(key, [])) for record in history._metrics]
    return [epoch + (i + 1) / n for epoch, n in enumerate(counts) for i in range(n)]
