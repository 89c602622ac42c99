"""A checkpoint whose optimizer does not fit the call is refused before anything is loaded
(issue 23, point 1)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn, optim

from pyblaze_pl._fit_checks import check_optimizers


def states(*optimizers: optim.Optimizer) -> dict:
    """What a Lightning checkpoint holds of its optimizers."""
    return {"optimizer_states": [o.state_dict() for o in optimizers]}


def stepped(optimizer: optim.Optimizer) -> optim.Optimizer:
    """``optimizer`` after one step, so that it has per-parameter state."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    optimizer.step()
    return optimizer


@pytest.fixture
def params():
    torch.manual_seed(0)
    return list(Net().parameters())  # shapes (16, 8), (16,), (3, 16), (3,)


def test_a_fitting_checkpoint_passes(params):
    saved = stepped(optim.Adam(params, lr=0.1))
    optim.lr_scheduler.StepLR(saved, 1)  # adds initial_lr to the saved groups
    check_optimizers(states(saved), "last.ckpt", [optim.Adam(params, lr=0.01)])
    check_optimizers({}, "last.ckpt", [])  # a fit without optimizers: nothing to check


@pytest.mark.parametrize(
    ("saved", "used", "message"),
    [
        (
            lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
            lambda p: optim.Adam(p),
            r"whose optimizer is of another class: its hyperparameters are dampening, lr, "
            r"momentum, nesterov, weight_decay \(those of SGD\), where Adam has amsgrad, betas,",
        ),
        pytest.param(
            lambda p: optim.Adam(p),
            lambda p: optim.AdamW(p),
            r"is of another class: .* \(those of Adam( or \w+)?\), where AdamW has .*"
            r"\(decoupled_weight_decay=False, where AdamW.s is True\)",
            marks=pytest.mark.skipif(
                "decoupled_weight_decay" not in optim.Adam([torch.zeros(1)]).defaults,
                reason="before torch 2.5, Adam's and AdamW's states hold the same keys",
            ),
        ),
        (
            lambda p: optim.SGD([{"params": p[:2]}, {"params": p[2:], "lr": 0.01}], lr=0.1),
            lambda p: optim.SGD(p, lr=0.1),
            r"whose optimizer has 2 parameter group\(s\), where this fit's has 1",
        ),
        (
            lambda p: optim.SGD(p[:2], lr=0.1),
            lambda p: optim.SGD(p, lr=0.1),
            r"has 2 parameter tensors in parameter group 1, where this fit's has 4",
        ),
        (
            lambda p: stepped(optim.Adam(p[2:] + p[:2])),
            lambda p: optim.Adam(p),
            r"holds 'exp_avg' of shape \(3, 16\) for parameter 0, where this fit's parameter 0 "
            r"has shape \(16, 8\): an optimizer over other parameters",
        ),
    ],
    ids=["SGD-for-Adam", "Adam-for-AdamW", "groups", "group-size", "other-parameters"],
)
def test_an_optimizer_that_does_not_fit_is_named(params, saved, used, message):
    optimizer = used(params)
    with pytest.raises(ValueError, match=message) as info:
        check_optimizers(states(saved(params)), "runs/last.ckpt", [optimizer])
    text = str(info.value)
    assert text.startswith(
        f"Expected a checkpoint of the optimizer of this fit ({type(optimizer).__name__} over "
    )
    assert "Received: 'runs/last.ckpt', whose optimizer" in text
    assert text.endswith("nothing was loaded.")


def test_weights_only_checkpoints_and_optimizer_counts_are_named(params):
    sgd = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match=r"which holds no optimizer state: the weights only, as "):
        check_optimizers({"state_dict": {}}, "w.ckpt", [sgd])
    with pytest.raises(ValueError, match=r"holds the states of 2 optimizer\(s\), where this fit "):
        check_optimizers(states(sgd, sgd), "two.ckpt", [sgd])


def fit(net, optimizer, **kwargs):
    return net.fit(
        make_loader(make_dataset(32), 16),
        epochs=1,
        optimizer=optimizer,
        loss=nn.CrossEntropyLoss(),
        gpu=False,
        **kwargs,
    )


def written_checkpoint(folder, **options) -> str:
    torch.manual_seed(0)
    written = Net()
    fit(
        written,
        optim.SGD(written.parameters(), lr=0.1),
        callbacks=[ModelCheckpoint(folder, **options)],
    )
    (path,) = folder.glob("*.ckpt")
    return path


def test_resuming_with_another_optimizer_is_refused_before_loading(tmp_path):
    path = written_checkpoint(tmp_path)
    net = Net()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match=r"(?i)nothing was loaded"):
        fit(net, optim.Adam(net.parameters()), ckpt_path=path)
    for key, value in before.items():  # nothing was loaded
        assert torch.equal(net.state_dict()[key], value)


def test_resuming_from_a_weights_only_checkpoint_is_refused_before_loading(tmp_path):
    path = written_checkpoint(tmp_path, save_weights_only=True)
    net = Net()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match=r"which holds no optimizer state: the weights only"):
        fit(net, optim.SGD(net.parameters(), lr=0.1), ckpt_path=path)
    for key, value in before.items():  # nothing was loaded
        assert torch.equal(net.state_dict()[key], value)


def test_ckpt_path_last_is_checked_as_the_file_it_names(tmp_path):
    # Lightning's special value used to bypass every check: the weights were loaded, then a bare
    # KeyError; a corrupted last.ckpt trained on silently.
    torch.manual_seed(0)
    written = Net()
    fit(
        written,
        optim.SGD(written.parameters(), lr=0.1),
        callbacks=[ModelCheckpoint(tmp_path, save_last=True)],
    )
    net = Net()
    before = copy.deepcopy(net.state_dict())
    again = [ModelCheckpoint(tmp_path, save_last=True)]
    with pytest.raises(ValueError, match=r"last\.ckpt', whose optimizer is of another class"):
        fit(net, optim.Adam(net.parameters()), ckpt_path="last", callbacks=again)
    for key, value in before.items():  # nothing was loaded
        assert torch.equal(net.state_dict()[key], value)
    last = tmp_path / "last.ckpt"
    raw = bytearray(last.read_bytes())
    start = raw.index(b"archive/data/0") + 200  # inside the first tensor's bytes
    raw[start] ^= 0xFF
    last.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"last\.ckpt.*CRC-32"):
        fit(net, optim.SGD(net.parameters(), lr=0.1), ckpt_path="last", callbacks=again)
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value)
