"""A failed batch explained: the batch, the loss, shapes, dtypes, devices and the likely fix."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pyblaze_pl._errors import describe, inspecting, with_context


def explain_batch_error(
    error: Exception,
    engine: Any,
    batch: Any,
    batch_idx: int,
    where: str,
    kwargs: Mapping[str, Any],
    method: str = "train_batch",
) -> BaseException | None:
    """``error`` (raised by the engine's ``method`` on a batch of ``where``: ``"epoch 3"``,
    ``"evaluate"``, ...) with what the user needs to fix it: the batch, the loss, the prediction
    and target shapes, dtypes and devices, and the likely fix. Returns None when there is nothing
    to add. The caller chains the original: ``raise new from error``."""
    if getattr(error, "_pyblaze_explained", False):
        return None
    name = type(engine).__name__
    lines = [f"{name}.{method} failed on batch {batch_idx} of {where}."]
    loss = kwargs.get("loss")
    if loss is not None:
        lines.append(f"loss: {_loss_name(loss)}")
    outputs = None
    if method != "eval_batch":  # run it again only where it was not what failed
        with contextlib.suppress(Exception), inspecting(engine.model):
            outputs = engine.eval_batch(batch)
    if isinstance(outputs, (tuple, list)) and len(outputs) == 2:
        lines.append(f"model output (y_pred): {describe(outputs[0])}")
        lines.append(f"target (y_true): {describe(outputs[1])}")
    else:
        lines.append(f"batch: {describe(batch)}")
    params = {(p.dtype, p.device) for p in engine.model.parameters()}
    if params:
        lines.append(
            "model parameters: " + ", ".join(f"{d} on {v}" for d, v in sorted(params, key=str))
        )
    fix = likely_fix(error, loss, outputs, batch, engine.model)
    if fix:
        lines.append(f"likely fix: {fix}")
    return with_context(error, "\n  ".join(lines))


def _loss_name(loss: object) -> str:
    if isinstance(loss, nn.Module):
        return repr(loss)
    return getattr(loss, "__qualname__", type(loss).__name__)


_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
_FLOAT_LOSSES = (
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _tensors(v)]
    return []


_MATMUL = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")
_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+) channels")


def _shape_fix(text: str) -> str | None:
    """The fix for inputs whose features or channels do not match a layer, read off torch's
    message (``nn.Linear``: "mat1 and mat2 shapes ...", convolutions: "... channels")."""
    matmul = _MATMUL.search(text)
    if matmul and matmul[2] != matmul[3]:
        return (
            f"a linear layer takes {matmul[3]} features per sample but received {matmul[2]}. "
            f"The inputs' last dimension must equal the layer's in_features: check the data's "
            f"shape against the model (flatten images first, e.g. with nn.Flatten())."
        )
    channels = _CHANNELS.search(text)
    if channels:
        return (
            f"a convolution takes {channels[1]} input channels but received {channels[2]}. "
            f"Image batches must be (batch, channels, height, width): check the data's channel "
            f"count and order (channels first, e.g. x.permute(0, 3, 1, 2) for channels last)."
        )
    return None


def likely_fix(
    error: Exception, loss: object, outputs: Any, batch: Any, model: nn.Module
) -> str | None:
    text = str(error)
    params = list(model.parameters())
    devices = {t.device for t in [*params, *_tensors(batch)]}
    if isinstance(loss, nn.Module):
        devices |= {t.device for t in loss.buffers()} | {t.device for t in loss.parameters()}
        devices |= {t.device for t in vars(loss).values() if isinstance(t, torch.Tensor)}
    if len(devices) > 1 or "same device" in text or "expected device" in text:
        where = ", ".join(sorted(str(d) for d in devices))
        return (
            f"tensors are on several devices ({where}). Leave moving to the library: do not call "
            f".to(device) on the model or the batches yourself, register tensors the model uses "
            f"as buffers (self.register_buffer) and give the loss's tensors (e.g. weight=) on the "
            f"model's device."
        )
    inputs = [t for t in _tensors(batch) if t.is_floating_point()]
    floats = {p.dtype for p in params if p.is_floating_point()}
    if inputs and floats and any(t.dtype not in floats for t in inputs):
        return (
            f"the model's parameters are {', '.join(sorted(map(str, floats)))} but the inputs are "
            f"{inputs[0].dtype}: convert one of them, e.g. model.float() (or model.double() and "
            f"the data with .double())."
        )
    shapes = _shape_fix(text)
    if shapes or not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
        return shapes
    y_pred, y_true = outputs
    if not (isinstance(y_pred, torch.Tensor) and isinstance(y_true, torch.Tensor)):
        return None
    loss_name = type(loss).__name__
    if isinstance(loss, _INDEX_LOSSES) and y_true.is_floating_point():
        return (
            f"{loss_name} expects class indices as targets: a torch.long tensor of shape "
            f"{tuple(y_pred.shape[:1]) + tuple(y_pred.shape[2:])} (e.g. y.long()); float targets "
            f"must be class probabilities of the predictions' shape {tuple(y_pred.shape)}. "
            f"Received targets {describe(y_true)}."
        )
    if isinstance(loss, _FLOAT_LOSSES) and (
        not y_true.is_floating_point() or y_true.shape != y_pred.shape
    ):
        fix = (
            f"{loss_name} expects float targets of the predictions' shape {tuple(y_pred.shape)}. "
            f"Received targets {describe(y_true)}."
        )
        if not y_true.is_floating_point() and y_pred.dim() == 2 and y_pred.shape[1] > 1:
            fix += " For class indices, use nn.CrossEntropyLoss()."
        elif not y_true.is_floating_point():
            fix += " Convert them with y.float()."
        if y_pred.dim() == y_true.dim() + 1 and y_pred.shape[-1] == 1:
            fix += " With one output per sample, squeeze it: model(x).squeeze(-1)."
        return fix
    return None
