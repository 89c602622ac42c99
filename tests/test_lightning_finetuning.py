"""Lightning's BackboneFinetuning with PyBlaze engines (issue 22.8): the backbone, once unfrozen,
trains at the callback's reduced learning rate; an optimizer that already holds the backbone's
parameters (which would train it at the full rate) is refused before training."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from conftest import make_dataset, make_loader
from torch import nn, optim

import pyblaze_pl.nn as xnn


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def pl_ns(request):
    return importlib.import_module(request.param)


class Finetuned(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


def fit(net, optimizer, callback):
    loader = make_loader(make_dataset(48), 8)
    return net.fit(loader, epochs=3, optimizer=optimizer, loss=nn.CrossEntropyLoss(),
                   callbacks=[callback], gpu=False)  # fmt: skip


def test_an_optimizer_over_all_parameters_is_refused_before_training(pl_ns):
    net = Finetuned()
    before = copy.deepcopy(net.state_dict())
    callback = pl_ns.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=1)
    with pytest.raises(ValueError) as info:
        fit(net, optim.SGD(net.parameters(), lr=0.1), callback)
    message = str(info.value)
    assert "Received: SGD holding 2 of the backbone's 2 parameter tensors" in message
    assert "not n.startswith('backbone.')" in message
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_the_backbone_trains_at_the_callbacks_reduced_rate_once_unfrozen(pl_ns):
    net = Finetuned()
    frozen = copy.deepcopy(net.backbone.state_dict())
    head = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    optimizer = optim.SGD(head, lr=0.1)
    callback = pl_ns.callbacks.BackboneFinetuning(
        unfreeze_backbone_at_epoch=2, backbone_initial_ratio_lr=0.1, should_align=False
    )
    fit(net, optimizer, callback)
    assert len(optimizer.param_groups) == 2  # the callback added the backbone's group
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.1 * 0.1)
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == {
        id(p) for p in net.backbone.parameters()
    }
    assert any(not torch.equal(v, frozen[k]) for k, v in net.backbone.state_dict().items())
