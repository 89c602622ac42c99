"""One run of a user's script, in a process of its own, under PyBlaze or under pyblaze_pl.

The compare command starts ``python -m pyblaze_pl.compare._child LIBRARY SCRIPT RESULT SEED
[ARGS...]`` twice. A run imports its library (for ``pyblaze_pl``, ``import pyblaze...`` is then
served by pyblaze_pl, see :mod:`pyblaze_pl.compare._aliases`), wraps the library's
``Engine.train``, ``Engine.evaluate`` and ``Engine.predict`` to record every call the script makes
(not the calls they make themselves, such as PyBlaze's validation), seeds Python, NumPy and torch,
runs SCRIPT as ``__main__`` with ``sys.argv = [SCRIPT, *ARGS]`` and the script's folder first on
``sys.path`` (as ``python SCRIPT`` does), and writes what it recorded to RESULT with
``torch.save`` (plain values only, read back with ``weights_only=True``). The script's output goes
to the console as usual; its file is only read.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import io
import os
import runpy
import sys
import tokenize
import traceback
from typing import Any

import torch

from pyblaze_pl.compare import _pyblaze
from pyblaze_pl.compare._values import normalize

__all__ = ["LIBRARIES", "Recorder", "main"]

LIBRARIES = ("pyblaze", "pyblaze_pl")
_METHODS = ("train", "evaluate", "predict")


class Recorder:
    """Records the outermost ``train``/``evaluate``/``predict`` calls of an engine class.

    Args:
        script: The script whose lines name the calls.

    Example:
        >>> recorder = Recorder("train.py")
        >>> recorder.wrap(pyblaze_pl.nn.Engine)  # doctest: +SKIP
    """

    def __init__(self, script: str) -> None:
        self.script = os.path.realpath(script)
        self.records: list[dict[str, Any]] = []
        self.depth = 0

    def wrap(self, engine_class: type) -> None:
        """Replaces ``train``, ``evaluate`` and ``predict`` of ``engine_class`` by recording
        versions (subclasses that call ``super()`` are recorded once, at the outermost call)."""
        for name in _METHODS:
            setattr(engine_class, name, self._recording(name, engine_class.__dict__[name]))

    def _recording(self, name: str, method: Any) -> Any:
        recorder = self

        @functools.wraps(method)
        def recording(engine: Any, *args: Any, **kwargs: Any) -> Any:
            if recorder.depth:
                return method(engine, *args, **kwargs)
            line, source, through_fit = recorder.site()
            info = _info(name, method, engine, args, kwargs)
            recorder.depth += 1
            try:
                result = method(engine, *args, **kwargs)
            finally:
                recorder.depth -= 1
            call = "fit" if name == "train" and through_fit else name
            record = {"call": call, "line": line, "source": source, "info": info}
            record["result"] = _recorded(result)
            if name == "train":
                record["weights"] = _recorded(engine.model)
            recorder.records.append(record)
            return result

        return recording

    def site(self) -> tuple[int, str, bool]:
        """The line of the script that made the current call (the innermost frame in the script;
        0 if the call did not come from it), that line's statement, and whether the call went
        through an estimator's ``fit``."""
        frame, through_fit = sys._getframe(2), False
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename == self.script or os.path.realpath(filename) == self.script:
                line = frame.f_lineno
                return line, _source_line(self.script, line), through_fit
            through_fit = through_fit or frame.f_code.co_name == "fit"
            frame = frame.f_back
        return 0, "", through_fit


def main(argv: list[str] | None = None) -> int:
    """Runs one script under one library; returns 0, or 1 when the script failed.

    Example:
        >>> main(["pyblaze_pl", "train.py", "/tmp/out.pt", "0", "--epochs", "2"])  # doctest: +SKIP
    """
    library, script, result_path, seed, *args = sys.argv[1:] if argv is None else argv
    if library not in LIBRARIES:
        raise ValueError(f"Expected a library in {LIBRARIES}. Received: {library!r}.")
    recorder = Recorder(script)
    outcome: dict[str, Any] = {"library": library, "records": recorder.records, "error": None}
    try:
        engine_class = _import(library)
    except BaseException:  # a broken install is reported, whatever it raises
        outcome["error"] = traceback.format_exc()
        outcome["stage"] = "import"
        _write(result_path, outcome)
        return 1
    outcome["stage"] = "script"
    recorder.wrap(engine_class)
    _pyblaze.seed_all(int(seed))
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            outcome["error"] = f"The script exited with status {e.code!r} (sys.exit).\n"
    except BaseException as e:  # whatever the script raises is reported
        outcome["error"] = _script_traceback(e, recorder.script)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        outcome["seeded_splits"] = _pyblaze.seeded_splits()
        _write(result_path, outcome)
    return 0 if outcome["error"] is None else 1


# --- helpers -----------------------------------------------------------------------------------


def _import(library: str) -> type:
    """Imports the library before the seeds are set (so that importing draws nothing later) and
    returns its Engine base class."""
    if library == "pyblaze":
        nn_module, helpers = _pyblaze.import_pyblaze()
        _pyblaze.set_helpers(helpers)  # with random_split(seed=None) seeded as pyblaze_pl's
        return nn_module.Engine
    nn_module = importlib.import_module("pyblaze_pl.nn")
    importlib.import_module("pyblaze_pl.nn.functional")
    from pyblaze_pl.compare import _aliases

    _aliases.install()
    return nn_module.Engine


def _recorded(value: Any) -> dict[str, Any]:
    """The value's node; a value that cannot be recorded is reported, not raised in the script."""
    try:
        return normalize(value)
    except Exception as e:  # the script must run on whatever it returns
        return {"kind": "other", "repr": f"not recorded ({type(e).__name__}: {e})"[:200]}


def _info(name: str, method: Any, engine: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """What the report needs to explain a difference: the model's mode before the call, the
    gradient accumulation steps and which metrics are PyBlaze 2.x's ``accuracy``."""
    try:
        bound = inspect.signature(method).bind(engine, *args, **kwargs).arguments
    except TypeError:  # the call itself will fail and say why
        bound = {}
    arguments = {**bound, **bound.get("kwargs", {})}
    steps = arguments.get("gradient_accumulation_steps")
    metrics = arguments.get("metrics") or {}
    model = getattr(engine, "model", None)
    return {
        "training": bool(getattr(model, "training", False)),
        "gradient_accumulation_steps": steps if isinstance(steps, int) else 1,
        "pyblaze_accuracy": sorted(
            str(k)
            for k, f in (metrics.items() if isinstance(metrics, dict) else ())
            if getattr(f, "__module__", "") == "pyblaze.nn.functional.metrics"
            and getattr(f, "__name__", "") == "accuracy"
        ),
    }


def _source_line(path: str, line: int, width: int = 96) -> str:
    """The statement of ``path`` at ``line`` on one line (shortened to ``width`` characters)."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except (OSError, UnicodeDecodeError):
        return ""
    text = source.splitlines()[line - 1].strip() if 0 < line <= source.count("\n") + 1 else ""
    try:
        statements = [
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or 0)
        ]
    except SyntaxError:
        statements = []
    if statements:  # the innermost statement: the one that starts last
        segment = ast.get_source_segment(source, max(statements, key=lambda n: n.lineno))
        if segment and len(segment) < 10_000:
            text = _one_line(segment)
    return text if len(text) <= width else text[: width - 4] + " ..."


def _one_line(segment: str) -> str:
    """A statement's source on one line, without comments."""
    lines = segment.splitlines()
    try:
        for token in tokenize.generate_tokens(io.StringIO(segment).readline):
            if token.type == tokenize.COMMENT:
                row, column = token.start
                lines[row - 1] = lines[row - 1][:column]
    except (tokenize.TokenError, SyntaxError):
        pass
    text = " ".join(line.strip() for line in lines if line.strip())
    return text.replace("( ", "(").replace(", )", ")")


def _script_traceback(error: BaseException, script: str) -> str:
    """The traceback from the script's first frame on, without the frames of this module."""
    tb = error.__traceback__
    while tb is not None and os.path.realpath(tb.tb_frame.f_code.co_filename) != script:
        tb = tb.tb_next
    shown = traceback.TracebackException(type(error), error, tb or error.__traceback__)
    here = os.path.realpath(__file__)
    frames = [f for f in shown.stack if os.path.realpath(f.filename) != here]
    shown.stack = traceback.StackSummary.from_list(frames)
    return "".join(shown.format())


def _write(path: str, outcome: dict[str, Any]) -> None:
    temporary = f"{path}.tmp"
    torch.save(outcome, temporary)
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main())
