"""History.plot: losses and metrics per epoch, drawn without pyplot (no window, no global state)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pyblaze_pl.nn.results import History


def plot_history(history: History, keys: Iterable[str] | None = None) -> Figure:
    from matplotlib.figure import Figure

    per_epoch = [k for k in history.keys if k != "micro_train_loss"]
    keys = per_epoch if keys is None else list(keys)
    unknown = [k for k in keys if k not in per_epoch]
    if unknown:
        raise ValueError(
            f"Expected per-epoch History keys to plot. Received: {unknown}. Valid: {per_epoch}."
        )
    losses = [k for k in keys if k.endswith("loss")]
    others = [k for k in keys if not k.endswith("loss")]
    panels = max(bool(losses) + bool(others), 1)
    figure = Figure(figsize=(6.4 * panels, 4.0), dpi=100)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    epochs = range(1, len(history) + 1)

    if losses:
        ax = axes[0]
        micro = history.micro_train_loss if "micro_train_loss" in history else []
        if micro and "train_loss" in losses:
            # Batch i of n in epoch e sits at e - 1 + (i + 1) / n: the epoch value sits at e.
            counts = [len(record.get("micro_train_loss", [])) for record in history._metrics]
            x = [epoch + (i + 1) / n for epoch, n in enumerate(counts) for i in range(n)]
            ax.plot(x, micro, color="C0", alpha=0.25, linewidth=0.8, label="batch train_loss")
        for i, key in enumerate(losses):
            ax.plot(epochs, history[key], marker="o", color=f"C{i}", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
    if others:
        ax = axes[-1]
        for i, key in enumerate(others):
            ax.plot(epochs, history[key], marker="o", color=f"C{i + len(losses)}", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("metric")
        ax.legend()
    figure.tight_layout()
    return figure
