"""`python -m pyblaze_pl.compare SCRIPT` and `pyblaze_pl.testing.compare_with_pyblaze` (issue 25).

The command's tests run unchanged PyBlaze 2.3.2 scripts (tiny data, a few batches) as a migrating
user would: each run is a fresh process. PyBlaze is test-only (`make test` installs it with
`pip install --no-deps pyblaze==2.3.2`); without it these tests skip, except under CI, where they
fail. The tests of the report, of the compared values and of a missing PyBlaze need no PyBlaze.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from pyblaze_pl.compare import _cli
from pyblaze_pl.compare._report import Run, known_reason, render
from pyblaze_pl.compare._values import Finding, compare, normalize
from pyblaze_pl.nn import data as pyblaze_pl_data
from pyblaze_pl.nn.results import Evaluation, History
from pyblaze_pl.testing import compare_with_pyblaze

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pyblaze_pl"
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


@pytest.fixture
def pyblaze_installed() -> None:
    """Skips without PyBlaze; under CI a missing PyBlaze fails the test instead."""
    if importlib.util.find_spec("pyblaze") is None:
        message = "PyBlaze is not installed: pip install --no-deps pyblaze==2.3.2 (make test)."
        if IN_CI:
            pytest.fail(f"CI must run the compare tests. {message}")
        pytest.skip(message)


def call_line(script: str, marker: str) -> int:
    """The 1-based line of ``script`` that contains ``marker``."""
    return next(i for i, line in enumerate(script.splitlines(), 1) if marker in line)


# An unchanged PyBlaze 2.3.2 script: an Estimator with the 2.x `engine` property, a callback,
# validation metrics, evaluate and predict; its numbers agree under both libraries.
AGREE = textwrap.dedent(
    """\
    import sys

    import torch
    from torch import nn, optim
    from torch.utils.data import TensorDataset

    import pyblaze.nn as xnn
    import pyblaze.nn.functional as X


    class Model(xnn.Estimator, nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

        @property
        def engine(self):
            return xnn.MLEEngine(self)

        def forward(self, x):
            return self.layers(x)


    def data(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 4, generator=g)
        return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())


    print("argv:", sys.argv[1:])
    print("pyblaze_pl.nn loaded:", "pyblaze_pl.nn" in sys.modules)
    epochs = int(sys.argv[sys.argv.index("--epochs") + 1])
    model = Model()
    train, val = data(64, 0).random_split(0.75, 0.25)  # no seed: as the tutorial
    history = model.fit(  # fit
        train.loader(batch_size=16, shuffle=True),
        val_data=val.loader(batch_size=16),
        epochs=epochs,
        optimizer=optim.Adam(model.parameters(), lr=0.01),
        loss=nn.CrossEntropyLoss(),
        callbacks=[xnn.EarlyStopping(patience=5)],
        metrics={"accuracy": X.accuracy},
        gpu=False,
    )
    print("epochs run:", len(history.loss))
    test = data(16, 2).loader(batch_size=8)
    evaluation = model.evaluate(test, metrics={"accuracy": X.accuracy}, gpu=False)  # evaluate
    predictions = model.predict(test, gpu=False)  # predict
    """
)

# PyBlaze steps after the first batch of every group and records loss / 3 (docs/migration.md §2).
ACCUMULATE = textwrap.dedent(
    """\
    import torch
    from torch import nn, optim
    from torch.utils.data import DataLoader, TensorDataset

    import pyblaze.nn as xnn

    x = torch.randn(30, 4)
    y = x @ torch.randn(4, 1)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    history = xnn.MLEEngine(model).train(  # train
        DataLoader(TensorDataset(x, y), batch_size=10),
        epochs=1,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.MSELoss(),
        gradient_accumulation_steps=3,
        gpu=False,
    )
    """
)

# AutoencoderEngine is dropped in pyblaze_pl: only the pyblaze_pl run fails.
FAILS_ON_PYBLAZE_PL = textwrap.dedent(
    """\
    import pyblaze.nn as xnn

    print("engine:", xnn.AutoencoderEngine.__name__)
    import pyblaze.multiprocessing  # fails
    """
)


def write(tmp_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    folder = tmp_path / "scripts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


# --- the command ---------------------------------------------------------------------------------


def test_agreeing_script_exits_0_names_each_call_and_passes_arguments(tmp_path, pyblaze_installed):
    script = write(tmp_path, "agree.py", AGREE)
    result = subprocess.run(
        [sys.executable, "-m", "pyblaze_pl.compare", str(script), "--epochs", "2", "--rtol", "9"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # Everything after SCRIPT is the script's: both runs saw it, the command kept its defaults.
    assert out.count("argv: ['--epochs', '2', '--rtol', '9']") == 2
    assert out.count("epochs run: 2") == 2
    # The PyBlaze run is PyBlaze's alone; the other one is served by pyblaze_pl.
    first, second = out.split("===== run 2 of 2")
    assert "pyblaze_pl.nn loaded: False" in first and "pyblaze_pl.nn loaded: True" in second
    assert "rtol=1e-05, atol=1e-08" in out
    for call, marker in (("fit", "# fit"), ("evaluate", "# evaluate"), ("predict", "# predict")):
        assert f"{script}:{call_line(AGREE, marker)}  {call}  same" in out
    # Each call's statement on one line, without comments (shortened to 96 characters).
    assert "\n    predictions = model.predict(test, gpu=False)\n" in out
    assert (
        "\n    history = model.fit(train.loader(batch_size=16, shuffle=True), val_data=val" in out
    )
    assert "History key 'micro_train_loss'  largest difference 0\n" in out
    assert "History key 'val_accuracy'" in out and "parameter 'layers.2.bias'" in out
    assert re.search(r"PyBlaze 2\.3\.2: +finished in \d+\.\d\d s, 3 calls recorded", out)
    assert re.search(r"pyblaze_pl \S+: +finished in \d+\.\d\d s, 3 calls recorded", out)
    assert "random_split(seed=None) drew its seed from NumPy's global generator" in out
    assert out.rstrip().endswith("Exit status 0.")
    # The script was only read: nothing was written beside it.
    assert sorted(p.name for p in script.parent.iterdir()) == ["agree.py"]
    assert script.read_text() == AGREE


def test_gradient_accumulation_exits_1_naming_call_key_and_reason(
    tmp_path, capfd, pyblaze_installed
):
    script = write(tmp_path, "accumulate.py", ACCUMULATE)
    assert _cli.main([str(script)]) == 1
    out = capfd.readouterr().out
    assert f"{script}:{call_line(ACCUMULATE, '# train')}  train  DIFFERS" in out
    line = next(x for x in out.splitlines() if "History key 'micro_train_loss'" in x)
    assert "first past tolerance: batch 0 (epoch 0)" in line
    # Batch 0 runs before any step: PyBlaze records that same loss divided by 3.
    theirs, ours = map(float, re.search(r"PyBlaze (\S+), pyblaze_pl (\S+)\)", line).groups())
    assert ours == pytest.approx(3 * theirs, rel=1e-5)
    assert "parameter '0.weight'" in out
    words = " ".join(out.split())  # the explanation is wrapped at 100 columns
    assert "-> PyBlaze is wrong here: with gradient_accumulation_steps=3" in words
    assert 'docs/migration.md §2, "Gradient accumulation"' in words
    assert out.rstrip().endswith("Exit status 1.")


def test_failed_run_exits_2_naming_the_side_and_the_error(tmp_path, capfd, pyblaze_installed):
    script = write(tmp_path, "fails.py", FAILS_ON_PYBLAZE_PL)
    assert _cli.main([str(script)]) == 2
    out = capfd.readouterr().out
    assert "engine: AutoencoderEngine" in out  # the PyBlaze run worked and showed its output
    report = out[out.index("pyblaze_pl.compare: ") :]
    assert re.search(r"PyBlaze 2\.3\.2: +finished", report)
    assert re.search(r"pyblaze_pl \S+: +FAILED", report)
    assert "The PyBlaze 2.3.2 run failed" not in report
    error = report[report.index("run failed while running the script:") :]
    assert f'File "{script}", line {call_line(FAILS_ON_PYBLAZE_PL, "# fails")}' in error
    assert "ModuleNotFoundError" in error and "DataLoader(num_workers=...)" in error  # and why
    assert "_child.py" not in error  # the traceback starts at the script
    assert report.rstrip().endswith("Exit status 2.")


def test_a_run_that_dies_without_results_is_a_failed_run(tmp_path, capfd):
    script = write(tmp_path, "dies.py", "import os\nprint('dying')\nos._exit(3)\n")
    run = _cli._run("pyblaze_pl", "pyblaze_pl", 2, str(script), [], 0, dict(os.environ), tmp_path)
    assert run.records == [] and run.error.startswith("The process ended with status 3 before")
    assert "dying" in capfd.readouterr().out
    exited = write(tmp_path / "b", "exits.py", "import sys\nsys.exit(4)\n")
    run = _cli._run("pyblaze_pl", "pyblaze_pl", 2, str(exited), [], 0, dict(os.environ), tmp_path)
    assert run.error == "The script exited with status 4 (sys.exit).\n"


def test_missing_pyblaze_or_script_exits_2_with_what_to_do(tmp_path, capfd, monkeypatch):
    script = write(tmp_path, "agree.py", AGREE)
    monkeypatch.setitem(sys.modules, "pyblaze", None)  # what a missing package looks like
    assert _cli.main([str(script)]) == 2
    err = capfd.readouterr().err
    assert "PyBlaze is not installed" in err
    assert "pip install --no-deps pyblaze==2.3.2" in err
    assert _cli.main([str(tmp_path / "missing.py")]) == 2
    err = capfd.readouterr().err
    assert f"expected a Python script file. Received: '{tmp_path / 'missing.py'}'" in err


def test_options_before_the_script_are_the_command_s_and_the_rest_the_script_s():
    assert _cli._script_index(["--rtol", "1e-3", "--cpu", "t.py", "--rtol", "2"]) == 3
    assert _cli._script_index(["t.py", "--seed", "1"]) == 0
    parsed = _cli._parser().parse_args(["--rtol", "1e-3", "--atol=0.5", "--seed", "7"])
    assert (parsed.rtol, parsed.atol, parsed.seed, parsed.cpu) == (1e-3, 0.5, 7, False)


def test_pyblaze_imports_are_served_by_pyblaze_pl_in_the_process():
    code = textwrap.dedent(
        """\
        import sys
        from pyblaze_pl.compare import _aliases
        import pyblaze_pl.testing, pyblaze_pl.compare._cli, pyblaze_pl.compare._child
        assert not [m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning")]
        _aliases.install()
        import pyblaze.nn as xnn
        import pyblaze.nn.functional as X
        from pyblaze.nn.callbacks import EarlyStopping
        import pyblaze_pl.nn, pyblaze_pl.nn.callbacks
        assert xnn.MLEEngine is pyblaze_pl.nn.MLEEngine
        assert X.accuracy is pyblaze_pl.nn.functional.accuracy
        assert EarlyStopping is pyblaze_pl.nn.EarlyStopping
        assert pyblaze_pl.nn.callbacks.__name__ == "pyblaze_pl.nn.callbacks"  # left as it was
        try:
            import pyblaze.optim
        except ModuleNotFoundError as e:
            print(e)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "pyblaze.optim is not served by pyblaze_pl" in result.stdout
    assert "torch_optimizer.Lamb" in result.stdout


# --- the report and the compared values ----------------------------------------------------------


def history(**values: list[float]) -> History:
    epochs = len(values["train_loss"])
    micro = values.pop("micro_train_loss")
    per = len(micro) // epochs
    records = [{k: v[i] for k, v in values.items()} for i in range(epochs)]
    for i, record in enumerate(records):
        record["micro_train_loss"] = micro[i * per : (i + 1) * per]
    return History(0.0, records)


def test_compare_names_key_and_epoch_batch_and_epoch_parameter_and_element():
    old = history(micro_train_loss=[1.0, 2.0, 3.0, 4.0], train_loss=[1.5, 3.5], val_loss=[1.0, 2.0])
    new = history(
        micro_train_loss=[1.0, 2.0, 3.0, 4.5], train_loss=[1.5, 3.5], val_loss=[1.0, float("nan")]
    )
    findings = {f.name: f for f in compare(normalize(old), normalize(new))}
    assert findings["train_loss"].ok and findings["train_loss"].largest == 0
    assert findings["micro_train_loss"].first == "batch 3 (epoch 1)"
    assert findings["micro_train_loss"].largest == 0.5
    assert (findings["micro_train_loss"].expected, findings["micro_train_loss"].actual) == (
        4.0,
        4.5,
    )
    assert findings["val_loss"].first == "epoch 1" and findings["val_loss"].largest == float("inf")

    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.weight[1, 0] += 1e-3
        b.bias.fill_(float("nan"))
        a.bias.fill_(float("nan"))  # NaN equals NaN
    findings = {f.name: f for f in compare(normalize(a), normalize(b), rtol=0, atol=1e-4)}
    assert findings["weight"].first == "element (1, 0)"
    assert findings["weight"].largest == pytest.approx(1e-3, rel=1e-3)
    assert findings["bias"].ok
    assert [f.ok for f in compare(normalize(a), normalize(b), rtol=0, atol=2e-3)] == [True, True]


def test_pyblaze_history_keys_get_pyblaze_pl_names_and_structures_are_checked():
    class PyBlazeHistory:  # the shape of PyBlaze 2.x's History: keys, values as attributes
        keys = ("batch_loss", "loss", "val_loss")
        batch_loss, loss, val_loss = [0.5, 0.25], [0.375], [0.5]

    PyBlazeHistory.__name__ = "History"
    PyBlazeHistory.__module__ = "pyblaze.nn.engine._history"
    ours = history(micro_train_loss=[0.5, 0.25], train_loss=[0.375], val_loss=[0.5])
    assert normalize(PyBlazeHistory())["values"] == normalize(ours)["values"]
    assert all(f.ok for f in compare(normalize(PyBlazeHistory()), normalize(ours)))
    # A PyBlaze 2.x evaluate dict against an Evaluation; a missing key; another length; a type.
    findings = compare(
        normalize(({"accuracy": 0.5, "f1": 1.0}, [1.0, 2.0], torch.zeros(2))),
        normalize((Evaluation({"accuracy": 0.5}), [1.0], torch.zeros(3))),
    )
    assert [f.describe() for f in findings] == [
        "[0] metric 'accuracy': within tolerance (largest difference 0)",
        "[0] key 'f1': only in PyBlaze",
        "[1] value: 2 items from PyBlaze, 1 from pyblaze_pl",
        "[2] output: shape (2,) from PyBlaze, (3,) from pyblaze_pl",
    ]


def record(call: str, line: int, result: object, **info: object) -> dict:
    base = {"training": False, "gradient_accumulation_steps": 1, "pyblaze_accuracy": []}
    return {"call": call, "line": line, "source": "", "info": {**base, **info}, "result": result}


def test_report_explains_documented_differences_and_what_follows_from_them():
    dropout = normalize(torch.tensor([1.0, 2.0]))
    other = normalize(torch.tensor([1.0, 2.5]))
    theirs = Run("PyBlaze 2.3.2", 1.0, [record("predict", 7, dropout, training=True)])
    theirs.records.append(record("evaluate", 9, normalize({"accuracy": 0.5})))
    ours = Run("pyblaze_pl 0.1.0", 2.0, [record("predict", 7, other)])
    ours.records.append(record("evaluate", 9, normalize({"accuracy": 0.75})))
    text, status = render("s.py", (theirs, ours), 1e-5, 1e-8, 0)
    assert status == 1
    assert "s.py:7  predict  DIFFERS" in text and "s.py:9  evaluate  DIFFERS" in text
    assert "first past tolerance: element (1,) (PyBlaze 2, pyblaze_pl 2.5)" in text
    words = " ".join(text.split())  # explanations are wrapped at 100 columns
    assert '(docs/migration.md §2, "predict runs the model in eval mode")' in words
    assert "-> This may follow from the difference at s.py:7" in words
    assert text.endswith(
        "Result: values differ at s.py:7, s.py:9 (2 calls compared). Exit status 1."
    )
    accuracy = record("fit", 3, normalize(0.0), pyblaze_accuracy=["acc"])
    reason = known_reason(accuracy, Finding("", "History key", "val_acc", 0.5, "epoch 0"))
    assert "2.x's accuracy does not round float [N] predictions" in reason
    assert known_reason(accuracy, Finding("", "History key", "val_loss", 0.5, "epoch 0")) is None

    # Different paths and a failed run: exit status 2, the failing side and its error named.
    ours = Run("pyblaze_pl 0.1.0", 2.0, [record("train", 8, other)], error="Traceback: boom\n")
    text, status = render("s.py", (theirs, ours), 1e-5, 1e-8, 0)
    assert status == 2
    assert "the runs took different paths: PyBlaze 2.3.2 called predict at s.py:7" in text
    assert "The pyblaze_pl 0.1.0 run failed while running the script:\n    Traceback: boom" in text
    assert text.endswith(
        "Result: the pyblaze_pl 0.1.0 run failed (0 calls compared). Exit status 2."
    )
    both = render("s.py", (Run("PyBlaze", 1.0, error="x\n"), ours), 1e-5, 1e-8, 0)
    assert both[1] == 2 and both[0].endswith("both runs failed (0 calls compared). Exit status 2.")

    # A call only one run made; no call at all.
    extra = Run("pyblaze_pl 0.1.0", 2.0, [*theirs.records, record("predict", 11, other)])
    text, status = render("s.py", (theirs, extra), 1e-5, 1e-8, 0)
    assert status == 1 and "Only pyblaze_pl 0.1.0 made 1 more call: predict at s.py:11." in text
    assert text.endswith(
        "values differ at s.py:11 (only pyblaze_pl 0.1.0) (2 calls compared). Exit status 1."
    )
    empty = render("s.py", (Run("PyBlaze", 1.0), Run("pyblaze_pl", 1.0)), 1e-5, 1e-8, 0)
    assert empty[1] == 0 and "nothing to compare: the script made no train/fit" in empty[0]


# --- compare_with_pyblaze ------------------------------------------------------------------------


def make_data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=g)
    return TensorDataset(x, x @ torch.randn(4, 1, generator=g))


def train(nn_module, steps: int = 1):
    seen.append(Dataset.loader)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1))
    engine = nn_module.MLEEngine(model)
    history = engine.train(
        DataLoader(make_data(), batch_size=6, shuffle=True),
        val_data=DataLoader(make_data(), batch_size=12),
        epochs=2,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        loss=nn.MSELoss(),
        gpu=False,
        **({"gradient_accumulation_steps": steps} if steps > 1 else {}),
    )
    evaluation = engine.evaluate(DataLoader(make_data(), batch_size=12), metrics={}, gpu=False)
    predictions = engine.predict(DataLoader(make_data(), batch_size=12), gpu=False)
    return {"history": history, "evaluation": evaluation, "out": (predictions, model)}


seen: list = []


def test_compare_with_pyblaze_passes_on_the_same_numbers_and_restores_dataset(pyblaze_installed):
    seen.clear()
    compare_with_pyblaze(train)
    # PyBlaze's Dataset helpers while PyBlaze ran, pyblaze_pl's in the other call and afterwards.
    assert seen[0].__module__ == "pyblaze.nn.data.extensions"
    assert seen[1] is pyblaze_pl_data.loader
    assert Dataset.loader is pyblaze_pl_data.loader
    assert Dataset.random_split is pyblaze_pl_data.random_split


def test_compare_with_pyblaze_raises_naming_key_batch_and_parameter(pyblaze_installed):
    with pytest.raises(AssertionError) as caught:
        compare_with_pyblaze(lambda nn_module: train(nn_module, steps=3))
    message = str(caught.value)
    assert "['history'] History key 'micro_train_loss', batch 0 (epoch 0): PyBlaze=" in message
    assert "['out'][1] parameter '0.weight', element (" in message
    theirs, ours = map(
        float, re.search(r"batch 0 \(epoch 0\): PyBlaze=(\S+), pyblaze_pl=(\S+),", message).groups()
    )
    assert ours == pytest.approx(3 * theirs, rel=1e-5)
    assert Dataset.loader is pyblaze_pl_data.loader

    def fails(nn_module):
        if nn_module.__name__ == "pyblaze_pl.nn":
            raise RuntimeError("only in pyblaze_pl")
        return torch.rand(2)

    with pytest.raises(RuntimeError, match="only in pyblaze_pl"):
        compare_with_pyblaze(fails)
    assert Dataset.loader is pyblaze_pl_data.loader and Dataset.split is pyblaze_pl_data.split


# --- structure -----------------------------------------------------------------------------------


def test_compare_and_testing_are_in_no_import_cycle():
    modules = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {m for m in imported if m in modules and m != name}
    ours = [m for m in modules if m.startswith("pyblaze_pl.compare") or m == "pyblaze_pl.testing"]

    def reaches(start: str, goal: str) -> bool:
        stack, seen_ = list(graph[start]), set()
        while stack:
            module = stack.pop()
            if module == goal:
                return True
            if module not in seen_:
                seen_.add(module)
                stack += graph[module]
        return False

    assert [m for m in ours if reaches(m, m)] == []


def test_history_keys_only_pyblaze_pl_records_and_unvalidated_epochs_are_no_difference():
    from pyblaze_pl.compare._values import _compare_history

    theirs = {
        "train_loss": [1.0, 0.9, 0.8],
        "val_loss": [1.1, 0.95],
        "em_distance": [0.1, 0.2, 0.3],
    }
    ours = {**theirs, "val_loss": [1.1, float("nan"), 0.95], "micro_train_loss": [1.0] * 6}
    findings = _compare_history(theirs, ours, 1e-5, 1e-8, "", ("PyBlaze", "pyblaze_pl"))
    assert [(f.name, f.problem, f.first) for f in findings] == [
        ("train_loss", None, None),
        ("val_loss", None, None),
        ("em_distance", None, None),
    ]
    ours["val_loss"] = [1.1, float("nan"), 0.5]  # a real difference is still found
    (val,) = [f for f in _compare_history(theirs, ours, 1e-5, 1e-8, "", ("PyBlaze", "pyblaze_pl"))
              if f.name == "val_loss"]  # fmt: skip
    assert val.first is not None
    del ours["em_distance"]  # a key PyBlaze records and pyblaze_pl does not: a difference
    missing = _compare_history(theirs, ours, 1e-5, 1e-8, "", ("PyBlaze", "pyblaze_pl"))
    assert ("em_distance", "only in PyBlaze") in [(f.name, f.problem) for f in missing]
