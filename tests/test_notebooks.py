"""The example notebooks, executed with nbclient as Jupyter runs them, and what a notebook user
sees: the bar moving during an epoch, the History and Evaluation tables, plots inline, and a
Lightning progress bar as in plain Lightning.

Every notebook in examples/ has a cell tagged ``parameters``; the tests run each with the
overrides in ``SMALL`` (a cell inserted after that one), in one shared kernel (``notebook_kernel``
in conftest.py).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))

# The parameters that make each notebook small; the live line is drawn at every batch (instead of
# at most 10 times a second) so that the test sees every step of the bar however fast it runs.
EVERY_BATCH = "import pyblaze_pl.nn.callbacks._live as _live\n_live._REDRAW_SECONDS = 0.0"
SMALL = {
    "training_a_classifier.ipynb": f"EPOCHS = 2\n{EVERY_BATCH}",
    "vae.ipynb": "EPOCHS = 1",
    "wgan.ipynb": "EPOCHS = 1",
    "normalizing_flows.ipynb": "EPOCHS = 1",
}
# PyBlaze 2.x's generative notebooks and the inline figures each shows.
FIGURES = {"vae.ipynb": 3, "wgan.ipynb": 1, "normalizing_flows.ipynb": 1}

SUMMARY = re.compile(
    r" \[Elapsed \d+:\d\d:\d\d\] train_loss: (\d+\.\d{5}), val_accuracy: ([01]\.\d{5}), "
    r"val_loss: (\d+\.\d{5})"
)


def execute(cells_or_path: list[str] | Path, kernel, parameters: str = "") -> nbformat.NotebookNode:
    """Executes a notebook (a path, or the sources of its code cells) in the shared kernel, after
    a reset of the kernel's names, with ``parameters`` inserted after its parameters cell (at the
    start if it has none)."""
    if isinstance(cells_or_path, Path):
        nb = nbformat.read(cells_or_path, as_version=4)
    else:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells_or_path])
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    at = tagged[0] + 1 if tagged else 0
    nb.cells[at:at] = [nbformat.v4.new_code_cell(parameters)]
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # names of an earlier notebook
    manager, kernel_client = kernel
    client = NotebookClient(nb, km=manager, timeout=180, allow_errors=False)
    client.kc = kernel_client
    client.execute()
    return nb


def cell(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """The code cell whose source is ``source``, else the one whose source starts with it."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    (found,) = [c for c in code if c.source == source] or [
        c for c in code if c.source.startswith(source)
    ]
    return found


def stdout(code_cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in code_cell.outputs if o.get("name") == "stdout")


def rendered(text: str) -> str:
    """What Jupyter shows for a stream: each carriage return goes back to the line's start and
    what follows is written over what is there (as on a terminal)."""
    lines = []
    for line in text.split("\n"):
        shown: list[str] = []
        for part in line.split("\r"):
            shown[: len(part)] = part
        lines.append("".join(shown).rstrip())
    return "\n".join(lines)


def html_rows(html: str) -> list[list[str]]:
    """The cells of the body rows of an HTML table."""
    body = html[html.index("<tbody>") :]
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr.*?</tr>", body)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_example_notebooks_are_shipped_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert any("parameters" in c.metadata.get("tags", []) for c in code)
    assert path.name in SMALL, "add the parameters that make it small to SMALL"


@pytest.fixture(scope="module")
def run_example(notebook_kernel):
    """Executes an example notebook with its small parameters, once per test module."""
    executed: dict[str, nbformat.NotebookNode] = {}

    def run(name: str) -> nbformat.NotebookNode:
        if name not in executed:
            executed[name] = execute(EXAMPLES / name, notebook_kernel, SMALL[name])
        return executed[name]

    return run


@pytest.fixture(scope="module")
def tutorial(run_example):
    return run_example("training_a_classifier.ipynb")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_example_notebooks_run(path, run_example):
    nb = run_example(path.name)  # nbclient raises CellExecutionError on an error
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


def test_tutorial_notebook_bar_moves_during_an_epoch(tutorial):
    text = stdout(cell(tutorial, "optimizer = optim.Adam"))
    assert "\x1b" not in text  # no terminal codes: Jupyter does not read them
    first_epoch = text[: text.index("Epoch 2/2:")]
    frames = [f.strip() for f in re.split(r"[\r\n]", first_epoch) if f.strip()]
    # 1149 training images in batches of 256: 5 batches, each drawn while the epoch runs
    training = first_epoch[: first_epoch.index("validating")]
    percents = re.findall(r"\((\d+\.\d)%\) ETA", training)
    assert percents == ["0.0", "20.0", "40.0", "60.0", "80.0", "100.0"]
    assert any("(100.0%) validating 0/1 [Elapsed" in f for f in frames)
    assert any("(100.0%) validating 1/1 [Elapsed" in f for f in frames)
    # What the notebook shows once the cell is done: PyBlaze's log, the bars overwritten.
    shown = rendered(text).split("\n")
    assert [shown[0], shown[2], shown[4]] == ["Epoch 1/2:", "Epoch 2/2:", ""] and len(shown) == 5
    assert SUMMARY.fullmatch(shown[1]) and SUMMARY.fullmatch(shown[3])


def test_tutorial_notebook_shows_the_history_table(tutorial):
    (output,) = cell(tutorial, "history").outputs
    assert output.data["text/plain"].startswith("History(epochs=2, duration=")
    html = output.data["text/html"]
    assert "<th>epoch</th><th>train_loss</th><th>val_accuracy</th><th>val_loss</th>" in html
    logged = [
        SUMMARY.fullmatch(line).groups()
        for line in rendered(stdout(cell(tutorial, "optimizer = optim.Adam"))).splitlines()
        if line.startswith(" [Elapsed")
    ]
    assert html_rows(html) == [[str(epoch), *values] for epoch, values in enumerate(logged, 1)]


def test_tutorial_notebook_draws_plots_inline(tutorial):
    (output,) = cell(tutorial, "history.plot()").outputs
    assert output.data["text/plain"].startswith("<HistoryFigure size 1280x400 with 2 Axes>")
    assert base64.b64decode(output.data["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    for start in ("all_losses = ", "plt.figure(dpi=150)\nplt.plot(range(len(history))"):
        outputs = cell(tutorial, start).outputs  # the tutorial's own pyplot figures
        assert [o.output_type for o in outputs] == ["display_data"]
        assert "image/png" in outputs[0].data


def test_tutorial_notebook_shows_the_evaluation(tutorial):
    text = stdout(cell(tutorial, "evaluation = model.evaluate("))
    assert re.fullmatch(r" \[Elapsed \d+:\d\d:\d\d\]\n", rendered(text))
    assert "(100.0%) ETA 0:00:00" in text  # the bar over the test batches, drawn
    printed = stdout(cell(tutorial, 'print(f"Our model'))
    accuracy = re.fullmatch(r"Our model achieves an accuracy of (\d+\.\d\d)%\.\n", printed)
    (output,) = cell(tutorial, "evaluation").outputs
    (row,) = html_rows(output.data["text/html"])
    assert row[0] == "accuracy" and f"{float(row[1]):.2%}" == f"{accuracy.group(1)}%"


LIGHTNING_MODULE = """
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
data = TensorDataset(torch.randn(40, 8), torch.randint(0, 3, (40,)))

class Plain(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 3)

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self.layer(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
"""
PLAIN_LIGHTNING = """
trainer = pl.Trainer(
    max_epochs=2, callbacks=[pl.callbacks.TQDMProgressBar()], logger=False,
    enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
)
trainer.fit(Plain(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=20))
"""
PYBLAZE_PL = """
import pyblaze_pl.nn as xnn

class Model(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 3)

    def forward(self, x):
        return self.layer(x)

model = Model()
history = model.fit(
    DataLoader(data, batch_size=8), val_data=DataLoader(data, batch_size=20), epochs=2,
    optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss=nn.CrossEntropyLoss(),
    callbacks=[pl.callbacks.TQDMProgressBar()],
)
"""
BAR = re.compile(r"((?:Epoch|Validation DataLoader) \d+):\s+(\d+)%\|[^|]*\| (\d+)/(\d+)")


def bar_states(code_cell: nbformat.NotebookNode) -> set[tuple[str, ...]]:
    """The states of the text bars of tqdm in a cell's output (Lightning draws widgets instead
    when ipywidgets is installed, which the dev dependencies do not install)."""
    texts = [o.get("text", "") for o in code_cell.outputs]
    return {state for text in texts for state in BAR.findall(text)}


def test_lightning_progress_bar_shows_as_in_plain_lightning(notebook_kernel):
    nb = execute([LIGHTNING_MODULE, PLAIN_LIGHTNING, PYBLAZE_PL], notebook_kernel)
    plain, ours = bar_states(cell(nb, PLAIN_LIGHTNING)), bar_states(cell(nb, PYBLAZE_PL))
    assert ours == plain
    assert {("Epoch 1", "100", "5", "5"), ("Validation DataLoader 0", "100", "2", "2")} <= ours


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_generative_notebooks_show_their_figures_inline(name, run_example):
    nb = run_example(name)
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == FIGURES[name]
    assert all(base64.b64decode(o.data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n" for o in images)
