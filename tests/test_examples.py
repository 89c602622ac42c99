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


def test_vae_example(tmp_path, capsys):
    import vae

    history = vae.main(["--epochs", "2", "--output-dir", str(tmp_path)])
    assert len(history.val_loss) == 2 and history.val_loss[-1] < history.val_loss[0]
    assert {p.name for p in tmp_path.iterdir()} == {"loss.png", "recon.png", "samples.png"}
    assert "Validation loss after 2 epochs" in capsys.readouterr().out


def test_wgan_example(tmp_path):
    import wgan

    history = wgan.main(["--epochs", "1", "--output-dir", str(tmp_path)])
    assert len(history.batch_em_distance) == 6 and len(history.em_distance) == 1
    assert (tmp_path / "wgan.png").exists()


def test_normalizing_flows_example(tmp_path):
    import normalizing_flows

    histories = normalizing_flows.main(["--epochs", "2", "--output-dir", str(tmp_path)])
    assert sorted(histories) == ["coupling/circles", "coupling/moons", "maf/circles", "maf/moons"]
    assert all(h.train_loss[-1] < h.train_loss[0] for h in histories.values())
    assert (tmp_path / "densities.png").exists()
