"""Translation of PyBlaze's ``gpu=`` argument into Lightning's accelerator, devices and strategy."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

GPU_CHOICES = (
    "'auto', True, False, a GPU index (int), a list of GPU indices or None (the model's device)"
)


@dataclass(frozen=True)
class DeviceConfig:
    """The Trainer arguments that ``gpu=`` resolves to."""

    accelerator: str
    devices: int | list[int]
    strategy: str = "auto"

    def as_trainer_kwargs(self) -> dict[str, Any]:
        return {"accelerator": self.accelerator, "devices": self.devices, "strategy": self.strategy}


def _multi_gpu_strategy() -> str:
    # A script can be re-launched once per GPU; an interactive session (notebook, REPL) cannot.
    interactive = hasattr(sys, "ps1") or bool(sys.flags.interactive) or "ipykernel" in sys.modules
    return "ddp_notebook" if interactive else "ddp"


def _gpus(indices: list[int]) -> DeviceConfig:
    if len(indices) == 1:
        return DeviceConfig("gpu", indices)
    return DeviceConfig("gpu", indices, _multi_gpu_strategy())


def _check_index(index: int, count: int, received: object) -> None:
    if not 0 <= index < count:
        available = f"GPU indices 0..{count - 1}" if count else "no GPU (use gpu=False or 'auto')"
        raise RuntimeError(
            f"Expected gpu to name a visible GPU. Received: gpu={received!r}, "
            f"but {count} GPU(s) are visible: {available}."
        )


def resolve_gpu(gpu: object, model: object = None) -> DeviceConfig:
    """Resolves PyBlaze's ``gpu`` argument to Lightning's accelerator, devices and strategy.

    Args:
        gpu: ``'auto'`` (every visible GPU, else the CPU), ``False`` (CPU), ``True`` (the single
            GPU with the most free memory), an ``int`` (that GPU) or a list of ints (those GPUs,
            trained with DDP when there are several), or ``None``: keep ``model`` on the device
            its parameters are on (v1's "do not move the model").
        model: The model, for ``gpu=None``.

    Returns:
        The resolved configuration.

    Raises:
        ValueError: If ``gpu`` is of no valid form.
        RuntimeError: If a requested GPU is not visible.

    Example:
        >>> resolve_gpu(False)
        DeviceConfig(accelerator='cpu', devices=1, strategy='auto')
    """
    if gpu is None:  # v1 (pyblaze/nn/engine/base.py, BaseEngine.evaluate): do not move
        parameter = next(model.parameters(), None) if hasattr(model, "parameters") else None
        device = parameter.device if parameter is not None else torch.device("cpu")
        if device.type == "cuda":
            return _gpus([device.index if device.index is not None else 0])
        return DeviceConfig(device.type if device.type == "mps" else "cpu", 1)
    # bool is a subclass of int: test it first.
    if isinstance(gpu, bool):
        if not gpu:
            return DeviceConfig("cpu", 1)
        count = torch.cuda.device_count()
        if count == 0:
            raise RuntimeError(
                "Expected a visible GPU for gpu=True. Received: gpu=True, but no GPU is visible "
                "(torch.cuda.device_count() == 0). Use gpu=False or gpu='auto' to train on the CPU."
            )
        free = [torch.cuda.mem_get_info(i)[0] for i in range(count)]
        return _gpus([max(range(count), key=free.__getitem__)])
    if isinstance(gpu, str) and gpu == "auto":
        count = torch.cuda.device_count()
        return _gpus(list(range(count))) if count else DeviceConfig("cpu", 1)
    if isinstance(gpu, int):
        _check_index(gpu, torch.cuda.device_count(), gpu)
        return _gpus([gpu])
    if isinstance(gpu, (list, tuple)) and gpu:
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in gpu):
            raise ValueError(
                f"Expected gpu to be a list of GPU indices (ints). Received: {gpu!r}. "
                f"Valid values: {GPU_CHOICES}."
            )
        if len(set(gpu)) != len(gpu):
            raise ValueError(f"Expected distinct GPU indices. Received: gpu={gpu!r}.")
        count = torch.cuda.device_count()
        for index in gpu:
            _check_index(index, count, gpu)
        return _gpus(list(gpu))
    raise ValueError(f"Expected gpu to be {GPU_CHOICES}. Received: {gpu!r} ({type(gpu).__name__}).")


_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


@contextmanager
def fast_cuda_checks(devices: DeviceConfig) -> Iterator[None]:
    """On a machine without GPUs, makes ``torch.cuda.is_available()`` cheap while a run lasts.

    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that CUDA checks never poison
    forked processes. Without a GPU, every check then tries NVML again (about 35 µs instead of
    1 µs), and optimizers such as Adam check on every step. With no visible GPU there is no CUDA
    state to protect, so the variable is lifted for the run and restored afterwards.
    """
    previous = os.environ.get(_NVML_CHECK)
    lift = devices.accelerator == "cpu" and previous == "1" and torch.cuda.device_count() == 0
    if lift:
        del os.environ[_NVML_CHECK]
    try:
        yield
    finally:
        if lift:
            os.environ[_NVML_CHECK] = previous
