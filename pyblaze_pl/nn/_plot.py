"""History.plot: losses and metrics per epoch, drawn without pyplot (no window, no global state).

The figure displays inline in Jupyter without pyplot (:class:`HistoryFigure`). This module takes
plain data (lists of floats) and never imports :mod:`pyblaze_pl.nn.results`, which imports it
lazily: the dependency goes one way.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

BATCHES = "micro_train_loss"


class HistoryFigure(Figure):
    """A matplotlib ``Figure`` that Jupyter displays inline as a PNG image, also in a notebook
    that never imported pyplot (IPython draws a plain ``Figure`` only once pyplot has set up its
    inline backend; before, it shows ``<Figure size ...>``). Everything else is a plain
    ``Figure``: ``savefig`` works as usual.

    Example:
        >>> figure = HistoryFigure()
        >>> figure._repr_png_()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        True
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _epoch_axis(ax: Axes) -> None:
    """Labels the x axis "Epoch" with integer ticks from 1 (epoch 1 is the first)."""

    class EpochLocator(MaxNLocator):
        def tick_values(self, vmin: float, vmax: float):
            return [t for t in super().tick_values(vmin, vmax) if t >= 1]

    ax.xaxis.set_major_locator(EpochLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("Epoch")
    ax.grid(alpha=0.3)


def plot_history(
    values: Mapping[str, Sequence[float]], batches_per_epoch: Sequence[int]
) -> HistoryFigure:
    """Draws the History values ``values`` (key: one value per epoch, ``micro_train_loss``: every
    batch's loss, flat): one panel for the losses (keys ending in ``loss``), one for the other
    metrics, each with a title, axis labels and the epochs 1, 2, ... on the x axis.

    ``micro_train_loss`` is drawn at the fraction of its epoch: batch ``i = 1..n`` of epoch ``e``
    (``n = batches_per_epoch[e - 1]``) sits at ``e - 1 + i / n``, so the epoch's last batch sits
    at ``e``, with the epoch's values. It is faint next to per-epoch losses.

    Example:
        >>> figure = plot_history({"train_loss": [1.0, 0.5]}, [0, 0])
        >>> [ax.get_title() for ax in figure.axes]
        ['Loss per epoch']
    """
    keys = list(values)
    batches = BATCHES in keys
    losses = [k for k in keys if k.endswith("loss") and k != BATCHES]
    others = [k for k in keys if not k.endswith("loss")]
    panels = max(bool(losses or batches) + bool(others), 1)
    figure = HistoryFigure(figsize=(6.4 * panels, 4.0), dpi=100)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    epochs = range(1, len(batches_per_epoch) + 1)

    if losses or batches:
        ax = axes[0]
        if batches:
            x = [e + (i + 1) / n for e, n in enumerate(batches_per_epoch) for i in range(n)]
            faint = {"alpha": 0.25, "linewidth": 0.8} if losses else {"linewidth": 1.0}
            ax.plot(x, values[BATCHES], color="C0", label="train_loss per batch", **faint)
        for i, key in enumerate(losses):
            ax.plot(epochs, values[key], marker="o", color=f"C{i}", label=key)
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
            ax.plot(epochs, values[key], marker="o", color=f"C{i + len(losses)}", label=key)
        ax.set_title("Metrics per epoch")
        ax.set_ylabel("Value")
        _epoch_axis(ax)
        ax.legend()
    figure.tight_layout()
    return figure
