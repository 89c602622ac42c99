"""HTML views of History and Evaluation, which Jupyter shows instead of their text repr.

The functions take plain data (names, floats); this module never imports
:mod:`pyblaze_pl.nn.results`, which imports it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

_HEAD = 10  # long histories show their first and last epochs (and the restored one)
_MAX_ROWS = 2 * _HEAD + 5


def _value(value: object) -> str:
    """A metric value as the console prints it (5 decimals, ``nan`` for a value not computed);
    anything that is not a number as its escaped ``str``."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.5f}"
    return html.escape(str(value))


def _shown_epochs(epochs: int, restored: int | None) -> list[int | None]:
    """The epochs (from 1) that get a row; None where rows are left out (an ellipsis row).

    Example:
        >>> _shown_epochs(3, None)
        [1, 2, 3]
        >>> _shown_epochs(30, 15)[9:14]
        [10, None, 15, None, 21]
    """
    if epochs <= _MAX_ROWS:
        return list(range(1, epochs + 1))
    wanted = sorted({*range(1, _HEAD + 1), *range(epochs - _HEAD + 1, epochs + 1), restored or 1})
    shown: list[int | None] = []
    for epoch in wanted:
        if shown and shown[-1] is not None and epoch > shown[-1] + 1:
            shown.append(None)
        shown.append(epoch)
    return shown


def history_table(
    columns: Mapping[str, Sequence[float]],
    epochs: int,
    duration: float,
    restored_epoch: int | None = None,
) -> str:
    """An HTML table with one row per epoch and one column per metric (sorted by name).

    Args:
        columns: Metric name to its value per epoch (``micro_train_loss`` left out).
        epochs: The number of epochs.
        duration: The training time in seconds, for the caption.
        restored_epoch: The epoch (from 1) whose weights early stopping restored; its row is
            marked and named in the caption.

    Example:
        >>> "<td>0.50000</td>" in history_table({"train_loss": [0.5]}, 1, 2.0)
        True
    """
    names = sorted(columns)
    caption = f"History: {epochs} epoch{'' if epochs == 1 else 's'} in {duration:.2f} s"
    if restored_epoch is not None:
        caption += f"; weights of epoch {restored_epoch} restored (best epoch)"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ["epoch", *names])
    rows = []
    for epoch in _shown_epochs(epochs, restored_epoch):
        if epoch is None:
            rows.append(f'<tr><td colspan="{len(names) + 1}">&hellip;</td></tr>')
            continue
        cells = "".join(f"<td>{_value(columns[name][epoch - 1])}</td>" for name in names)
        if epoch == restored_epoch:
            rows.append(
                f'<tr class="restored" style="font-weight: bold" title="best epoch, weights '
                f'restored"><td>{epoch} (restored)</td>{cells}</tr>'
            )
        else:
            rows.append(f"<tr><td>{epoch}</td>{cells}</tr>")
    return (
        f'<table class="pyblaze-history"><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def evaluation_table(metrics: Mapping[str, float]) -> str:
    """An HTML table with one row per metric (sorted by name) and its value.

    Example:
        >>> "<td>accuracy</td><td>0.90000</td>" in evaluation_table({"accuracy": 0.9})
        True
    """
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_value(value)}</td></tr>"
        for name, value in sorted(metrics.items())
    )
    return (
        '<table class="pyblaze-evaluation"><caption>Evaluation</caption>'
        f"<thead><tr><th>metric</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
    )
