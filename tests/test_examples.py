"""The examples in examples/ run (shortened)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import lightning_interop


def test_lightning_interop_example(tmp_path, capsys):
    histories = lightning_interop.main(["--epochs", "2", "--output-dir", str(tmp_path)])
    assert len(histories["model"]) == 2 and len(histories["lightning_module"]) == 2
    assert "val_macro_f1" in histories["model"]
    assert (tmp_path / "logs" / "version_0" / "metrics.csv").exists()
    assert list((tmp_path / "checkpoints").glob("*.ckpt"))
    assert "Evaluation(accuracy=" in capsys.readouterr().out
