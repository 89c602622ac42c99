"""Every loader names the file and says what is wrong with it; torch files are verified against
their CRC-32 checksums before they are loaded (issue 23, points 3 and 5)."""

from __future__ import annotations

import copy
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn
from pyblaze_pl._files import CorruptFile, read_torch_file, zip_problem
from pyblaze_pl.nn.results import History


class Config(xnn.Config):
    hidden: int = 4


class Model(xnn.Configurable, nn.Module):
    __config__ = Config

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fc = nn.Linear(3, self.hidden)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > evil_ran",))


def lightning_checkpoint(net: nn.Module) -> dict:
    """What ModelCheckpoint writes, reduced to what the loaders look at."""
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    return {"state_dict": state, "epoch": 0, "global_step": 4, "loops": {}}


def flip_a_byte_in_the_tensors(path: Path) -> None:
    """Changes one byte in the middle of the largest tensor's data, as a bad disk would."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    data = bytearray(path.read_bytes())
    name_length, extra_length = (
        int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def make_file(kind: str, path: Path, good: Path) -> Path:
    """Writes a bad file of ``kind`` at ``path`` (``good``: an intact torch file to spoil)."""
    if kind == "a directory":
        path.mkdir()
        (path / "last.ckpt").write_bytes(good.read_bytes())
    elif kind == "random bytes":
        path.write_bytes(bytes(range(7, 255, 3)) * 20)
    elif kind == "an empty file":
        path.write_bytes(b"")
    elif kind == "a truncated zip":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "an unsafe pickle":
        path.write_bytes(pickle.dumps({"state_dict": Evil(), "epoch": 0}))
    elif kind == "a corrupted zip":
        path.write_bytes(good.read_bytes())
        flip_a_byte_in_the_tensors(path)
    elif kind == "a text file":
        path.write_text('{"hidden": 4}')
    return path


TORCH_MESSAGES = {
    "a directory": r"Received: a directory \(it holds 1 entries: last\.ckpt\)",
    "random bytes": r"which is 1660 bytes of no known format: not a zip archive",
    "an empty file": r"which is an empty file \(0 bytes\)",
    "a truncated zip": r"which is a truncated zip archive \(torch\.save's format\) of \d+ bytes",
    "an unsafe pickle": r"which holds a pickle that .*could run code \(it imports posix\.system\)",
    "a corrupted zip": r"which is a corrupted zip archive .*CRC-32 checksum of entry '[^']+/data/",
    "a text file": r"which is a text file of 13 bytes \(it starts with '\{\"hidden\": 4\}'\)",
}


@pytest.fixture
def good_files(tmp_path, net):
    """An intact Lightning checkpoint and an intact weights file of Model."""
    torch.save(lightning_checkpoint(net), tmp_path / "good.ckpt")
    Model().save(tmp_path / "good")
    return tmp_path / "good.ckpt", tmp_path / "good.pt"


@pytest.mark.parametrize("kind", list(TORCH_MESSAGES))
@pytest.mark.parametrize("loader", ["ckpt_path", "load_checkpoint_weights", "Model.load"])
def test_torch_file_loaders_name_the_file_and_what_it_is(
    net, tmp_path, good_files, monkeypatch, loader, kind
):
    good_ckpt, good_weights = good_files
    monkeypatch.chdir(tmp_path)  # where an unsafe load would leave its mark
    before = copy.deepcopy(net.state_dict())
    if loader == "Model.load":
        Config().save(tmp_path / "bad")
        path = make_file(kind, tmp_path / "bad.pt", good_weights)
        call = lambda: Model.load(tmp_path / "bad")  # noqa: E731
    else:
        path = make_file(kind, tmp_path / "bad.ckpt", good_ckpt)
        if loader == "ckpt_path":
            call = lambda: net.fit(  # noqa: E731
                make_loader(make_dataset(32), 16),
                epochs=1,
                optimizer=optim.SGD(net.parameters(), lr=0.1),
                loss=nn.CrossEntropyLoss(),
                gpu=False,
                ckpt_path=path,
            )
        else:
            call = lambda: xnn.load_checkpoint_weights(net, path)  # noqa: E731
    error = IsADirectoryError if kind == "a directory" else ValueError
    with pytest.raises(error, match=TORCH_MESSAGES[kind]) as info:
        call()
    message = str(info.value)
    assert f"'{path}'" in message
    assert "weights_only=False" not in message and "add_safe_globals" not in message
    assert not (tmp_path / "evil_ran").exists()
    for key, value in before.items():  # nothing was loaded
        assert torch.equal(net.state_dict()[key], value)


HISTORY_MESSAGES = {
    "a directory": r"Expected a History JSON file at '.*bad\.json'\. Received: a directory",
    "random bytes": r"Received: 1660 bytes of no known format.*, not JSON text\.$",
    "an empty file": r"Received: an empty file \(0 bytes\)\.$",
    "a truncated zip": r"Received: a truncated zip archive .*, not JSON text\.$",
    "an unsafe pickle": r"Received: a pickle of \d+ bytes \(torch\.save's legacy format or pickle",
    "a torch file": r"Received: a zip archive of \d+ bytes \(torch\.save's format\), not JSON",
    "truncated JSON": r"Received: JSON text that ends early, after 60 bytes .*: the file is trunc",
}


@pytest.mark.parametrize("kind", list(HISTORY_MESSAGES))
def test_history_load_names_the_file_and_what_it_is(tmp_path, good_files, kind):
    path = tmp_path / "bad.json"
    if kind == "a torch file":
        path.write_bytes(good_files[0].read_bytes())
    elif kind == "truncated JSON":
        text = json.dumps({"duration": 1.0, "metrics": [{"train_loss": 0.5}] * 4})
        path.write_text(text[:60])
    else:
        make_file(kind, path, good_files[0])
    error = IsADirectoryError if kind == "a directory" else ValueError
    with pytest.raises(error, match=HISTORY_MESSAGES[kind]) as info:
        History.load(path)
    assert f"'{path}'" in str(info.value)


def test_every_flipped_byte_is_refused_or_changes_nothing(tmp_path):
    """A bit flip anywhere in a torch file is refused by the checksums (or, in headers that torch
    reads, by torch), except in bytes torch never reads (time stamps, padding): then the content
    loads unchanged. Never silently different tensors."""
    good = tmp_path / "good.pt"
    original = {"w": torch.arange(64.0), "b": torch.ones(3, dtype=torch.int64)}
    torch.save(original, good)
    data = good.read_bytes()
    refused = 0
    for position in range(len(data)):
        spoiled = bytearray(data)
        spoiled[position] ^= 0x04
        path = tmp_path / "spoiled.pt"
        path.write_bytes(bytes(spoiled))
        try:
            loaded = read_torch_file(path, "Expected a torch file. Received: 'spoiled.pt'")
        except ValueError:
            refused += 1
            continue
        assert loaded.keys() == original.keys(), position
        assert all(torch.equal(loaded[k], v) for k, v in original.items()), position
    data_bytes = 64 * 4 + 3 * 8
    assert refused > data_bytes  # every byte of the tensors, and more


def test_torch_itself_loads_a_corrupted_file_silently(tmp_path):
    """Why the checksums are verified: torch.load does not (with or without mmap)."""
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    flip_a_byte_in_the_tensors(path)
    for mmap in (False, True):
        assert not torch.equal(
            torch.load(path, weights_only=True, mmap=mmap)["w"], torch.zeros(1000)
        )
    assert "CRC-32 checksum of entry 'w/data/0'" in zip_problem(path)
    with pytest.raises(CorruptFile, match=r"'w\.pt', which is a corrupted zip archive"):
        read_torch_file(path, "Expected weights. Received: 'w.pt'")


def test_intact_files_pass_the_checks(tmp_path, good_files, net):
    good_ckpt, _ = good_files
    assert zip_problem(good_ckpt) is None
    fresh = xnn.load_checkpoint_weights(Net(), good_ckpt)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), net.parameters(), strict=True))
    assert isinstance(Model.load(tmp_path / "good"), Model)


def test_the_checksum_benchmark_runs(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "checksum_cost.py"
    spec = importlib.util.spec_from_file_location("checksum_cost", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--size-mb", "4", "--rounds", "1"])
    assert result["checksums (zip_problem)"] > 0
    assert "| checksums (zip_problem) |" in capsys.readouterr().out
