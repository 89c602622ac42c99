"""One semantics on both runners (the Trainer and Lightning Fabric): every case where the two
loops once diverged gives the same numbers on each, and a plain PyTorch loop's where random draws
happen in the main process."""

from __future__ import annotations

import copy
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

import pyblaze_pl.nn as xnn

RUNNERS = ["trainer", "fabric"]


def fit(net, loader, runner, epochs=2, **kwargs):
    kwargs.setdefault("optimizer", optim.SGD(net.parameters(), lr=0.1))
    kwargs.setdefault("loss", nn.CrossEntropyLoss())
    return net.fit(loader, epochs=epochs, gpu=False, runner=runner, **kwargs)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


class OrderEngine(xnn.SupervisedEngine):
    """Records the samples of every batch, per epoch (the order the sampler gave)."""

    seen: list[list[int]] = []  # noqa: RUF012 - reset by each test

    def train_batch(self, batch, **kwargs):
        if self.iteration == 0:
            self.seen.append([])
        self.seen[-1] += batch[0][:, 0].long().tolist()
        return super().train_batch(batch, **kwargs)


class OrderNet(Net):
    __engine__ = OrderEngine


def test_a_distributed_sampler_gets_its_epoch_on_both_runners():
    data = TensorDataset(torch.arange(12).float().unsqueeze(1).expand(12, 8), torch.arange(12) % 3)
    orders = {}
    for runner in RUNNERS:
        OrderEngine.seen = []
        sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0)
        torch.manual_seed(0)
        fit(OrderNet(), DataLoader(data, batch_size=4, sampler=sampler), runner, epochs=3)
        orders[runner] = OrderEngine.seen
    assert orders["trainer"] == orders["fabric"]
    epochs = orders["fabric"]
    assert len({tuple(order) for order in epochs}) == 3  # each epoch its own order
    for epoch, order in enumerate(epochs):  # set_epoch(epoch), as DistributedSampler documents
        expected = torch.randperm(12, generator=torch.Generator().manual_seed(epoch)).tolist()
        assert order == expected


class Noisy(Dataset):
    """Random augmentation while loading: draws from the loading process's generator."""

    def __init__(self, n: int = 48) -> None:
        self.data = make_dataset(n)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        x, y = self.data[index]
        return x + 0.1 * torch.randn(8), y


@pytest.mark.parametrize("runner", RUNNERS)
def test_draws_while_loading_interleave_with_dropout_as_in_a_plain_loop(runner):
    torch.manual_seed(0)
    ours = Net(dropout=0.5)
    reference = copy.deepcopy(ours)
    loader = DataLoader(Noisy(), batch_size=8, shuffle=True)
    torch.manual_seed(1)
    history = fit(ours, loader, runner, epochs=2)

    torch.manual_seed(1)  # PyBlaze's loop: a batch is read, then trained on
    optimizer = optim.SGD(reference.parameters(), lr=0.1)
    losses = []
    for _ in range(2):
        reference.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(reference(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert_same_weights(ours, reference)
    assert history.micro_train_loss == pytest.approx(losses, rel=0, abs=0)


def test_seeded_workers_give_the_same_run_on_both_runners():
    from lightning_fabric import seed_everything

    results = {}
    for runner in RUNNERS:
        seed_everything(0, workers=True, verbose=False)
        net = Net(dropout=0.3)
        loader = DataLoader(Noisy(32), batch_size=8, shuffle=True, num_workers=2)
        history = fit(net, loader, runner, epochs=2)
        results[runner] = (history.micro_train_loss, net)
    os.environ.pop("PL_SEED_WORKERS", None)
    os.environ.pop("PL_GLOBAL_SEED", None)
    assert results["trainer"][0] == results["fabric"][0]
    assert_same_weights(results["trainer"][1], results["fabric"][1])


def test_a_list_of_batches_works_the_same_on_both_runners():
    batches = [(x, y) for x, y in make_loader(make_dataset(32), 8)]
    results = {}
    for runner in RUNNERS:
        torch.manual_seed(0)
        net = Net()
        history = fit(net, batches, runner, val_data=batches[:2])
        evaluation = net.evaluate(batches, metrics={"n": lambda p, t: torch.tensor(len(t))},
                                  runner=runner, gpu=False)  # fmt: skip
        predictions = net.predict([x for x, _ in batches], runner=runner, gpu=False)
        results[runner] = (history.to_dict(), evaluation, predictions, net)
    assert results["trainer"][0] == results["fabric"][0]
    assert len(results["trainer"][0]["micro_train_loss"]) == 8
    assert results["trainer"][1] == results["fabric"][1]
    assert torch.equal(results["trainer"][2], results["fabric"][2])
    assert results["fabric"][2].shape == (32, 3)
    assert_same_weights(results["trainer"][3], results["fabric"][3])


@pytest.mark.parametrize("runner", RUNNERS)
def test_predict_on_a_tensor_gives_one_row_per_sample(runner):
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(5, 8)
    out = net.predict(x, runner=runner, gpu=False)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out, net(x))
    assert net.predict(torch.randn(70, 8), runner=runner, gpu=False).shape == (70, 3)
    with pytest.raises(TypeError, match=r"Received: a tensor of shape \(5, 8\).*TensorDataset"):
        fit(net, x, runner)
    with pytest.raises(TypeError, match=r"Received: a tensor of shape \(5, 8\)"):
        net.evaluate(x, runner=runner, gpu=False)
    with pytest.raises(ValueError, match=r"Received: a tensor of shape \(8,\).*unsqueeze\(0\)"):
        net.predict(torch.randn(8), runner=runner, gpu=False)
    with pytest.raises(TypeError, match=r"a data set \(TensorDataset\).*\.loader\(batch_size"):
        fit(net, make_dataset(16), runner)
    with pytest.raises(ValueError, match=r"Received: 'Trainer'\. Did you mean 'trainer'\?"):
        net.predict(x, runner="Trainer", gpu=False)


# --- modes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_model_left_in_eval_mode_trains_in_training_mode(runner):
    torch.manual_seed(0)
    ours = Net(dropout=0.5)
    reference = copy.deepcopy(ours)
    ours.eval()  # e.g. after a plot or an evaluate helper
    loader = make_loader(make_dataset(32), 8)
    torch.manual_seed(1)
    fit(ours, loader, runner, val_data=loader)
    assert ours.training is False  # the mode the call started with
    torch.manual_seed(1)
    optimizer = optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(2):
        reference.train()  # PyBlaze: model.train() at every epoch
        for x, y in loader:
            loss = nn.functional.cross_entropy(reference(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for _ in loader:  # validation: iterating a loader draws its base seed
            pass
    assert_same_weights(ours, reference)


class BatchNormNet(Net):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.norm(x))


class Freeze(xnn.TrainingCallback):
    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.seen: list[bool] = []

    def before_epoch(self, current, num_iterations):
        self.module.eval()

    def after_batch(self, loss):
        self.seen.append(self.module.training)


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_callback_keeps_a_submodule_frozen_from_before_epoch(runner):
    torch.manual_seed(0)
    net = BatchNormNet()
    freeze = Freeze(net.norm)
    loader = make_loader(make_dataset(32), 8)
    fit(net, loader, runner, val_data=loader, callbacks=[freeze])
    assert freeze.seen == [False] * 8
    assert int(net.norm.num_batches_tracked) == 0  # never updated: frozen every epoch
    assert net.training and net.norm.training  # the modes the call started with


class Fails(xnn.PredictionCallback):
    def __init__(self, exception: type[BaseException]) -> None:
        self.exception = exception

    def after_batch(self, *args):
        if self.exception is KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C
        raise self.exception("stop")


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("call", ["evaluate", "predict", "validation"])
@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt])
def test_failed_and_interrupted_calls_restore_the_modes(runner, call, exception):
    torch.manual_seed(0)
    net = BatchNormNet()
    net.norm.eval()  # frozen by the user
    loader = make_loader(make_dataset(16), 8)
    callbacks = [Fails(exception)]
    if call == "validation":
        history = None
        try:
            history = fit(net, loader, runner, val_data=loader, callbacks=callbacks)
        except RuntimeError:
            assert exception is RuntimeError
        else:  # Ctrl-C during fit returns the History of the completed epochs
            assert exception is KeyboardInterrupt and len(history) == 0
    else:
        with pytest.raises(exception):
            getattr(net, call)(loader, callbacks=callbacks, runner=runner, gpu=False)
    assert net.training is True and net.norm.training is False


# --- SIGTERM ------------------------------------------------------------------------------------

SIGTERM_SCRIPT = """
import os, signal, sys
import torch
from torch import nn, optim
sys.path.insert(0, {tests!r})
from conftest import Net, make_dataset, make_loader
import pyblaze_pl.nn as xnn

class Term(xnn.TrainingCallback, xnn.PredictionCallback):
    def after_batch(self, *args):
        os.kill(os.getpid(), signal.SIGTERM)

    def after_training(self):
        print("after_training ran", flush=True)  # trackers close their runs

net = Net()
loader = make_loader(make_dataset(32), 8)
kwargs = dict(callbacks=[Term()], runner={runner!r}, gpu=False)
if {call!r} == "fit":
    net.fit(loader, epochs=3, optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(), **kwargs)
else:
    getattr(net, {call!r})(loader, **kwargs)
print("returned normally")
"""


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_sigterm_ends_the_process_with_a_failure_status(runner, call, tmp_path):
    tests = os.path.dirname(__file__)
    script = SIGTERM_SCRIPT.format(tests=tests, runner=runner, call=call)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 143, result.stderr[-2000:]
    assert "returned normally" not in result.stdout
    assert ("after_training ran" in result.stdout) == (call == "fit")
    assert f"Stopped by SIGTERM during {call}" in result.stderr


# --- Lightning's levers -------------------------------------------------------------------------


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_compiled_model_trains_compiled(runner):
    graphs = []

    def backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    torch.manual_seed(0)
    net = Net()
    plain = copy.deepcopy(net)
    compiled = torch.compile(net, backend=backend)
    loader = make_loader(make_dataset(32), 8)
    history = compiled.fit(loader, epochs=2, gpu=False, runner=runner,
                           optimizer=optim.SGD(net.parameters(), lr=0.1),
                           loss=nn.CrossEntropyLoss())  # fmt: skip
    assert graphs, "fit did not run the compiled forward"
    assert "forward" not in net.__dict__  # the model's own forward is back
    assert list(net.state_dict()) == list(plain.state_dict())  # no "_orig_mod." keys
    reference = fit(plain, loader, runner)
    assert history.micro_train_loss == pytest.approx(reference.micro_train_loss, abs=1e-6)
    count = len(graphs)
    compiled.predict(loader, runner=runner, gpu=False)
    assert len(graphs) >= count  # predict runs through the compiled forward too (no recompile)


def test_mixed_precision_losses_are_computed_inside_autocast():
    torch.manual_seed(0)
    net = Net()
    loader = make_loader(make_dataset(64), 16)
    loss = nn.CrossEntropyLoss()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = sum(loss(net(x), y).float() * len(y) for x, y in loader) / 64
    results = {}
    for runner in RUNNERS:
        model = copy.deepcopy(net)
        options = {"precision": "bf16-mixed"}
        evaluation = model.evaluate(loader, metrics={"loss": loss}, runner=runner, gpu=False,
                                    trainer_kwargs=options)  # fmt: skip
        history = fit(model, loader, runner, val_data=loader, epochs=1, trainer_kwargs=options)
        results[runner] = (evaluation["loss"], history.to_dict(), model)
        assert evaluation["loss"] == pytest.approx(float(expected), abs=1e-6)
    assert results["trainer"][0] == results["fabric"][0]
    assert results["trainer"][1] == results["fabric"][1]
    assert_same_weights(results["trainer"][2], results["fabric"][2])


@pytest.mark.parametrize("runner", RUNNERS)
def test_every_call_shuts_its_loader_workers_down(runner):
    torch.manual_seed(0)
    net = Net()
    loader = DataLoader(make_dataset(32), batch_size=8, num_workers=2, persistent_workers=True)
    fit(net, loader, runner, val_data=loader)
    net.evaluate(loader, runner=runner, gpu=False)
    net.predict(loader, runner=runner, gpu=False)
    assert getattr(loader, "_iterator", None) is None
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []
    start = time.monotonic()
    gc.collect()
    assert time.monotonic() - start < 5


def test_plain_calls_run_on_lightning_fabric(monkeypatch):
    from lightning_fabric import Fabric

    from pyblaze_pl._lightning import fabric_loop

    fabric_loop._shared_fabric.cache_clear()
    built, used = [], []
    original_fabric, original_loop = Fabric.__init__, fabric_loop.FabricLoop.__init__

    def spy_fabric(self, *args, **kwargs):
        built.append(kwargs)
        original_fabric(self, *args, **kwargs)

    def spy_loop(self, hooks, fabric, *args):
        used.append(fabric)
        original_loop(self, hooks, fabric, *args)

    monkeypatch.setattr(Fabric, "__init__", spy_fabric)
    monkeypatch.setattr(fabric_loop.FabricLoop, "__init__", spy_loop)
    net = Net()
    loader = make_loader(make_dataset(16), 8)
    net.fit(loader, epochs=1, optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(), gpu=False)  # fmt: skip
    net.evaluate(loader, gpu=False)
    net.predict(loader, gpu=False)
    assert len(used) == 3 and all(isinstance(f, Fabric) for f in used)
    # one Fabric per configuration, shared by the calls (16-mixed: one per call, for its scaler)
    assert built == [{"accelerator": "cpu", "devices": 1, "precision": "32-true"}]


def test_a_call_in_the_lightning_namespace_uses_lightning_fabric(monkeypatch):
    pytest.importorskip("lightning")
    import lightning.pytorch as L
    from lightning.fabric import Fabric

    class Lit(xnn.Estimator, L.LightningModule):  # predicts with the engine: no predict_step
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(8, 3)

        def forward(self, x):
            return self.linear(x)

    built = []
    original = Fabric.__init__

    def spy(self, *args, **kwargs):
        built.append(type(self).__module__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Fabric, "__init__", spy)
    out = Lit().predict(make_loader(make_dataset(16), 8), gpu=False)
    assert out.shape == (16, 3)
    assert built == ["lightning.fabric.fabric"]
