"""The Lightning boundary: who imports Lightning, and the bugs that sat on its old seams."""

from __future__ import annotations

import ast
import copy
import pathlib
import subprocess
import sys

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim
from torch.utils.data import DataLoader, IterableDataset

import pyblaze_pl.nn as xnn

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pyblaze_pl"
LIGHTNING = ("pytorch_lightning", "lightning", "lightning_fabric")
HEAVY = (*LIGHTNING, "torchmetrics", "torchvision")


def lightning_imports(path: pathlib.Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] in LIGHTNING]


def test_only_the_boundary_package_imports_lightning():
    outside = {
        str(path.relative_to(PACKAGE)): lightning_imports(path)
        for path in PACKAGE.rglob("*.py")
        if "_lightning" not in path.parts
    }
    assert {k: v for k, v in outside.items() if v} == {}


def test_the_import_check_finds_lightning_imports(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "import os\nimport lightning.pytorch as L\nfrom pytorch_lightning import Trainer\n"
    )
    assert lightning_imports(source) == ["lightning.pytorch", "pytorch_lightning"]


def import_graph() -> dict[str, set[str]]:
    """The package's modules -> the package modules each imports at run time (function-level
    imports included; ``if TYPE_CHECKING:`` blocks are not run-time imports)."""

    def name_of(path: pathlib.Path) -> str:
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(path): path for path in PACKAGE.rglob("*.py")}

    def imported(path: pathlib.Path, name: str) -> set[str]:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()

        def visit(node: ast.AST) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                if isinstance(child, ast.Import):
                    found.update(alias.name for alias in child.names)
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                        base = ".".join(parts + ([child.module] if child.module else []))
                    for alias in child.names:
                        full = f"{base}.{alias.name}"
                        found.add(full if full in modules else base)
                visit(child)

        visit(ast.parse(path.read_text()))
        return {m for m in found if m in modules and m != name}

    return {name: imported(path, name) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of two or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_engines_reach_the_boundary_through_one_entry():
    graph = import_graph()
    engines = {name: deps for name, deps in graph.items() if name.startswith("pyblaze_pl.nn")}
    reached = {dep for deps in engines.values() for dep in deps if "_lightning" in dep}
    # nn/_streaming.py wraps torchmetrics internals through compat (loaded on first metric use)
    assert reached <= {"pyblaze_pl._lightning", "pyblaze_pl._lightning.compat"}
    boundary = {name: deps for name, deps in graph.items() if "_lightning" in name}
    assert not any(
        dep.startswith("pyblaze_pl.nn.engine") for deps in boundary.values() for dep in deps
    )


def test_importing_the_api_does_not_load_the_trainer():
    code = (
        "import sys, pyblaze_pl.nn; print(sorted(m for m in sys.modules if m.split('.')[0] in %r))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code % (HEAVY,)], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


class Recorder(xnn.TrainingCallback, xnn.PredictionCallback):
    def __init__(self):
        self.losses, self.epochs, self.predictions = [], [], []

    def before_epoch(self, current, num_iterations):
        self.epochs.append(num_iterations)

    def after_batch(self, *args):
        if args and args[0] is not None:
            self.losses.append(float(args[0]))

    def before_predictions(self, model, num_iterations):
        self.predictions.append(num_iterations)


# 1. The batch loss is produced in one place


def test_lightning_module_accumulation_gives_callbacks_the_recorded_losses():
    from test_lightning_interop import Lit

    recorder = Recorder()
    history = Lit().fit(
        make_loader(make_dataset(64), 16),
        epochs=2,
        gradient_accumulation_steps=2,
        callbacks=[recorder],
        gpu=False,
    )
    assert recorder.losses == pytest.approx(history.micro_train_loss, rel=1e-6)
    reference = Lit()
    x, y = make_dataset(64).tensors
    with torch.no_grad():
        first = nn.functional.cross_entropy(reference(x[:16]), y[:16]).item()
    assert recorder.losses[0] == pytest.approx(first, rel=1e-5)


# 2. Iterable-style loaders have no length


class Stream(IterableDataset):
    def __init__(self, n: int):
        self.data = make_dataset(n, seed=3)

    def __iter__(self):
        return iter(zip(*self.data.tensors, strict=True))


def test_iterable_loaders_for_validation_evaluate_and_predict(net):
    reference = copy.deepcopy(net)
    recorder = Recorder()
    stream = DataLoader(Stream(20), batch_size=8)
    history = net.fit(
        make_loader(make_dataset(32), 8),
        val_data=stream,
        epochs=1,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=[recorder],
        gpu=False,
    )
    evaluation = net.evaluate(stream, metrics={"loss": nn.CrossEntropyLoss()}, callbacks=[recorder])
    predictions = net.predict(stream, callbacks=[recorder])
    x = make_dataset(20, seed=3).tensors[0]
    assert evaluation.loss == pytest.approx(history.val_loss[0], rel=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(predictions, net(x))
    assert recorder.predictions == [None, None, None]  # no length: no total
    assert not torch.equal(reference(x), net(x))


def test_iterable_training_data_counts_batches_without_a_length():
    recorder = Recorder()
    net = Net()
    history = net.fit(
        DataLoader(Stream(20), batch_size=8),
        epochs=2,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=[recorder],
        gpu=False,
    )
    assert recorder.epochs == [None, None]
    assert len(history.micro_train_loss) == 6  # 3 batches (8, 8, 4) per epoch


# 3. Callback state in checkpoints is keyed by identity, not position


class Counter(xnn.TrainingCallback):
    def __init__(self, state_key: str):
        self.state_key = state_key
        self.count = 0

    def after_epoch(self, metrics):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_callback_state_is_restored_whatever_the_order(tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    def fit(net, epochs, callbacks, **kwargs):
        return net.fit(
            make_loader(make_dataset(32), 8),
            epochs=epochs,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            callbacks=callbacks,
            gpu=False,
            **kwargs,
        )

    a, b = Counter("a"), Counter("b")
    early = xnn.EarlyStopping("train_loss", patience=3)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(Net(), 2, [a, early, b, checkpoint])
    a.count, b.count = 10, 20  # so a restored count is visible
    b2, a2, early2 = Counter("b"), Counter("a"), xnn.EarlyStopping("train_loss", patience=3)
    fit(Net(), 3, [b2, early2, a2], ckpt_path=tmp_path / "last.ckpt")
    assert (a2.count, b2.count) == (3, 3)  # 2 restored + 1 epoch
    assert early2.epoch == 3
    with pytest.warns(
        UserWarning, match=r"no callback of this call claims: \['EarlyStopping', 'b'\]"
    ):
        fit(Net(), 3, [Counter("a")], ckpt_path=tmp_path / "last.ckpt")


# 4. Every optimizer step goes through the precision plugin


class OwnOptimizer(xnn.Engine):
    """Keeps its optimizer to itself: it is not passed to fit, so Lightning never sees it."""

    def __init__(self, model):
        super().__init__(model)
        self.optimizer = optim.SGD(model.parameters(), lr=0.5)

    def train_batch(self, data, loss):
        x, y = data
        value = loss(self.model(x), y)
        self.backward(value)
        self.optimizer_step(self.optimizer)
        return value


class PassedOptimizer(xnn.Engine):
    def train_batch(self, data, optimizer, loss):
        x, y = data
        value = loss(self.model(x), y)
        self.backward(value)
        self.optimizer_step(optimizer)
        return value


def test_unregistered_optimizers_are_unscaled_under_16_mixed():
    torch.manual_seed(0)
    own, passed = nn.Linear(8, 3), nn.Linear(8, 3)
    passed.load_state_dict(own.state_dict())
    before = copy.deepcopy(own.state_dict())
    from pytorch_lightning.plugins import MixedPrecision

    def kwargs():  # fp16 with a GradScaler, which Lightning only picks by itself on a GPU
        plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
        return {"epochs": 1, "gpu": False, "trainer_kwargs": {"plugins": [plugin]}}

    loader = make_loader(make_dataset(32), 8)
    OwnOptimizer(own).train(loader, loss=nn.CrossEntropyLoss(), **kwargs())
    PassedOptimizer(passed).train(
        loader,
        optimizer=optim.SGD(passed.parameters(), lr=0.5),
        loss=nn.CrossEntropyLoss(),
        **kwargs(),
    )
    torch.testing.assert_close(own.state_dict(), passed.state_dict())
    change = (own.weight - before["weight"]).abs().max().item()
    assert 1e-3 < change < 1.0  # trained, and not by 65536x-scaled gradients


def test_no_module_grows_past_about_400_lines():
    """Modules stay readable in one sitting: 400 lines at most."""
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > 400} == {}
