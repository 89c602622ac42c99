"""A Ctrl-C during the library's critical sections (lazy imports, the renames of files saved
together) takes effect when the section is complete (issue 23, point 7). Each case runs in a
subprocess that sends itself SIGINT, so that a failure cannot interrupt the test session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SLOW_MODULE = """
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the import
time.sleep(0.2)  # without deferral, KeyboardInterrupt is raised here and the module discarded
DONE = True
"""


def run_script(tmp_path: Path, script: str) -> list[str]:
    (tmp_path / "slow_module.py").write_text(SLOW_MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_a_ctrl_c_during_an_import_takes_effect_when_the_import_is_complete(tmp_path):
    lines = run_script(
        tmp_path,
        """
        import signal, sys
        from pyblaze_pl._signals import deferred_sigint

        try:
            with deferred_sigint():
                import slow_module
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted after the import:", sys.modules["slow_module"].DONE)
        print("handler restored:", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        with deferred_sigint():  # later calls work
            import slow_module
        print("later call:", slow_module.DONE)
        """,
    )
    assert lines == [
        "interrupted after the import: True",
        "handler restored: True",
        "later call: True",
    ]


def test_without_deferral_the_import_is_lost(tmp_path):
    """What the deferral prevents: the interrupted module is gone."""
    lines = run_script(
        tmp_path,
        """
        import sys
        try:
            import slow_module
        except KeyboardInterrupt:
            print("interrupted; module kept:", "slow_module" in sys.modules)
        """,
    )
    assert lines == ["interrupted; module kept: False"]


def test_the_previous_handler_decides_what_a_deferred_ctrl_c_means(tmp_path):
    lines = run_script(
        tmp_path,
        """
        import os, signal, threading
        from pyblaze_pl._signals import deferred_sigint

        calls = []
        signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
        with deferred_sigint():
            with deferred_sigint():  # nested
                os.kill(os.getpid(), signal.SIGINT)
                print("inside, handled:", len(calls))
        print("after, handled:", len(calls))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with deferred_sigint():
            os.kill(os.getpid(), signal.SIGINT)
        print("ignored stays ignored:", signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
        errors = []
        def in_a_thread():
            try:
                with deferred_sigint():
                    pass
            except Exception as e:
                errors.append(e)
        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
        print("thread errors:", errors)
        """,
    )
    assert lines == [
        "inside, handled: 0",
        "after, handled: 1",
        "ignored stays ignored: True",
        "thread errors: []",
    ]


def test_a_ctrl_c_between_the_renames_of_files_saved_together_waits_for_the_last(tmp_path):
    lines = run_script(
        tmp_path,
        """
        import os, signal
        from pyblaze_pl._io import atomic_write_all

        replace = os.replace
        def replace_then_ctrl_c(source, target):
            replace(source, target)
            if str(target).endswith("m.pt"):
                os.kill(os.getpid(), signal.SIGINT)  # between the two renames
        os.replace = replace_then_ctrl_c
        try:
            new = lambda f: f.write("new")
            atomic_write_all([("m.pt", new, False), ("m.json", new, False)])
        except KeyboardInterrupt:
            print("interrupted")
        print(open("m.pt").read(), open("m.json").read(), sorted(os.listdir(".")))
        """,
    )
    assert lines == ["interrupted", "new new ['m.json', 'm.pt', 'slow_module.py']"]


FIRST_CALL = """
import signal, sys, time
import torch
from torch.utils.data import DataLoader, TensorDataset
import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional

assert "sympy" not in sys.modules  # the first call imports Lightning, and Lightning sympy


class CtrlCInSympy:
    \"\"\"Sends SIGINT once, while sympy (torch imports it with Lightning) is half imported.\"\"\"

    sent = False

    def find_spec(self, name, path, target=None):
        if name == "sympy.integrals" and not self.sent:  # sympy.logic is complete by then
            CtrlCInSympy.sent = True
            signal.raise_signal(signal.SIGINT)
            time.sleep(0.2)  # without deferral, KeyboardInterrupt is raised here
        return None


sys.meta_path.insert(0, CtrlCInSympy())
torch.manual_seed(0)
net = torch.nn.Linear(4, 2)
data = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,))), batch_size=8)
engine = xnn.MLEEngine(net)
try:
    engine.evaluate(data, metrics={"accuracy": xnn.functional.accuracy})
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted:", CtrlCInSympy.sent)
history = engine.train(data, epochs=2, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                       loss=torch.nn.CrossEntropyLoss())
print("later fit:", len(history))
"""


def test_a_ctrl_c_during_the_first_calls_lazy_imports_stops_it_and_later_calls_work(tmp_path):
    """The first call imports Lightning (and with it sympy, 1 to 2.5 s): a Ctrl-C meanwhile stops
    the call once the import is complete, and later calls work (interrupted mid-import, sympy
    was left without its submodules: every later fit failed with
    `module 'sympy' has no attribute 'logic'`)."""
    assert run_script(tmp_path, FIRST_CALL) == ["interrupted: True", "later fit: 2"]
