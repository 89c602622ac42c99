"""gpu= resolution, with torch.cuda mocked for 0, 1 and 4 GPUs."""

import pytest
import torch

from pyblaze_pl._lightning.devices import DeviceConfig, resolve_gpu

GIB = 2**30


@pytest.fixture
def gpus(monkeypatch):
    """Pretends that GPUs with the given free memory (GiB) are visible."""

    def install(*free_gib):
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(free_gib))
        monkeypatch.setattr(
            torch.cuda, "mem_get_info", lambda i: (int(free_gib[i] * GIB), 80 * GIB)
        )

    return install


def test_no_gpu(gpus):
    gpus()
    assert resolve_gpu("auto") == DeviceConfig("cpu", 1)
    assert resolve_gpu(False) == DeviceConfig("cpu", 1)
    with pytest.raises(RuntimeError, match=r"gpu=True.*no GPU is visible.*gpu=False"):
        resolve_gpu(True)
    with pytest.raises(RuntimeError, match=r"gpu=0.*0 GPU\(s\) are visible"):
        resolve_gpu(0)
    with pytest.raises(RuntimeError, match=r"gpu=\[0, 1\]"):
        resolve_gpu([0, 1])


def test_one_gpu(gpus):
    gpus(10)
    assert resolve_gpu("auto") == DeviceConfig("gpu", [0])
    assert resolve_gpu(True) == DeviceConfig("gpu", [0])
    assert resolve_gpu(0) == DeviceConfig("gpu", [0])
    assert resolve_gpu([0]) == DeviceConfig("gpu", [0])
    assert resolve_gpu(False) == DeviceConfig("cpu", 1)
    with pytest.raises(RuntimeError, match=r"gpu=1.*1 GPU\(s\) are visible: GPU indices 0..0"):
        resolve_gpu(1)


def test_four_gpus(gpus):
    gpus(3, 20, 7.5, 19)
    assert resolve_gpu("auto") == DeviceConfig("gpu", [0, 1, 2, 3], "ddp")
    # True: the single GPU with the most free memory.
    assert resolve_gpu(True) == DeviceConfig("gpu", [1])
    # An int means "that GPU" (Lightning's devices=3 would mean "three GPUs").
    assert resolve_gpu(3) == DeviceConfig("gpu", [3])
    assert resolve_gpu([2, 0]) == DeviceConfig("gpu", [2, 0], "ddp")
    assert resolve_gpu((1,)) == DeviceConfig("gpu", [1])
    with pytest.raises(RuntimeError, match=r"gpu=\[1, 4\].*4 GPU\(s\).*0..3"):
        resolve_gpu([1, 4])


def test_interactive_sessions_use_notebook_ddp(gpus, monkeypatch):
    gpus(1, 1)
    import sys

    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    assert resolve_gpu([0, 1]).strategy == "ddp_notebook"


@pytest.mark.parametrize(
    "value", ["cuda", "gpu", 1.0, [], [0, "1"], [True], {"gpu": 0}, -1, [0, 0]]
)
def test_invalid_values_name_the_value_and_the_choices(gpus, value):
    gpus(5, 5)
    with pytest.raises((ValueError, RuntimeError)) as info:
        resolve_gpu(value)
    message = str(info.value)
    assert repr(value) in message or str(value) in message
    assert "Expected" in message


def test_trainer_kwargs():
    assert DeviceConfig("gpu", [2]).as_trainer_kwargs() == {
        "accelerator": "gpu",
        "devices": [2],
        "strategy": "auto",
    }


def test_nvml_check_is_lifted_only_for_cpu_runs_without_gpus(gpus, monkeypatch):
    import os

    from pyblaze_pl._lightning.devices import fast_cuda_checks

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    gpus()
    with fast_cuda_checks(DeviceConfig("cpu", 1)):
        assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
    gpus(10)  # a GPU exists: CUDA checks must stay fork-safe
    with fast_cuda_checks(DeviceConfig("cpu", 1)):
        assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
    with fast_cuda_checks(DeviceConfig("gpu", [0])):
        assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
