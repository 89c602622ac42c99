"""`make demo`: examples/train_classifier.py on the bundled digits and on a CIFAR-10 folder."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from test_datasets import PER_BATCH, _write_cifar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import train_classifier


def test_demo_on_digits_reaches_90_percent(tmp_path, capsys):
    accuracy = train_classifier.main(["--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert accuracy >= 0.90
    assert out.startswith("Epoch 1/20:\n [Elapsed ")
    assert re.search(r"^Our model achieves an accuracy of \d+\.\d\d%\.$", out, re.MULTILINE)
    for name in ("loss.png", "validation.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_demo_loads_cifar10_from_a_folder(tmp_path, capsys):
    _write_cifar(tmp_path / "data")
    accuracy = train_classifier.main(
        [
            "--dataset",
            "cifar10",
            "--data-root",
            str(tmp_path / "data"),
            "--epochs",
            "1",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out
    assert "Epoch 1/1:" in out
    # The printed accuracy is the returned one, over the whole CIFAR test batch.
    assert f"Our model achieves an accuracy of {accuracy:.2%}." in out
    assert (accuracy * PER_BATCH) == pytest.approx(round(accuracy * PER_BATCH), abs=1e-6)
    assert (tmp_path / "out" / "loss.png").exists()


def test_demo_cifar10_without_data_or_network_names_the_folder(tmp_path, monkeypatch, capsys):
    import torchvision.datasets.utils

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    with pytest.raises(OSError) as error:
        train_classifier.main(["--dataset", "cifar10", "--data-root", str(tmp_path)])
    message = str(error.value)
    assert str(tmp_path) in message and "cifar-10-batches-py" in message, message
    assert "Epoch" not in capsys.readouterr().out  # nothing trained
