"""Lightning codebases' data and modules in `fit`: callbacks reading `pl_module` attributes,
LightningDataModules, loaders without a length, several loaders, other batch shapes,
`ckpt_path="last"`, checkpoint contents, and a LightningModule's own steps (issue 11, §3-§5)."""

from __future__ import annotations

import copy
import importlib
import io
import math
import re

import pytest
import torch
from conftest import Net, make_dataset, make_loader
from torch import nn, optim
from torch.utils.data import DataLoader, IterableDataset

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X
from pyblaze_pl.nn.callbacks._live import ProgressBar


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def pl(request):
    return importlib.import_module(request.param)


def sgd_fit(model, train, val=None, epochs=2, **kwargs):
    return model.fit(
        train,
        val_data=val,
        epochs=epochs,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        gpu=False,
        **kwargs,
    )


def train_loader():
    return make_loader(make_dataset(64), 16)


def val_loader():
    return make_loader(make_dataset(30, seed=2), 10)


# §3 pl_module inside Lightning callbacks reaches the user's model


class Encoded(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(8, 16)
        self.head = nn.Linear(16, 3)
        self.scale = 2.0

    def forward(self, x):
        return self.head(torch.relu(self.encoder(x)))


def test_lightning_callbacks_read_the_user_models_attributes(pl):
    seen = []

    class ReadsEncoder(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen.append(
                (
                    pl_module.encoder.weight.detach().clone(),
                    pl_module.scale,
                    pl_module.model is model,
                )
            )

    model = Encoded()
    sgd_fit(model, train_loader(), epochs=2, callbacks=[ReadsEncoder()])
    assert [s[1:] for s in seen] == [(2.0, True), (2.0, True)]
    assert not torch.equal(seen[0][0], seen[1][0])  # the live weights, epoch by epoch
    torch.testing.assert_close(seen[1][0], model.encoder.weight.detach())


def test_a_missing_attribute_names_the_attribute(pl):
    errors = []

    class ReadsMissing(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            try:
                pl_module.decoder  # noqa: B018
            except AttributeError as e:
                errors.append(str(e))

    sgd_fit(Encoded(), train_loader(), epochs=1, callbacks=[ReadsMissing()])
    assert len(errors) == 1 and "decoder" in errors[0]


# §4 LightningDataModules in place of train_data


def datamodule_class(pl):
    class Data(pl.LightningDataModule):
        def __init__(self, with_val=True):
            super().__init__()
            self.calls = []
            self.with_val = with_val

        def prepare_data(self):
            self.calls.append("prepare_data")

        def setup(self, stage):
            self.calls.append(("setup", stage))  # stage: a str enum
            self.train, self.val = make_dataset(64), make_dataset(30, seed=2)

        def train_dataloader(self):
            return make_loader(self.train, 16)

        def val_dataloader(self):
            return make_loader(self.val, 10)

        def predict_dataloader(self):
            return make_loader(self.val, 10)

    return Data


def test_datamodule_fit_equals_a_fit_on_its_loaders(pl):
    torch.manual_seed(0)
    model = Net()
    reference = copy.deepcopy(model)
    data = datamodule_class(pl)()
    metrics = {"accuracy": X.accuracy}
    history = sgd_fit(model, data, metrics=metrics)
    expected = sgd_fit(reference, train_loader(), val_loader(), metrics=metrics)
    assert data.calls == ["prepare_data", ("setup", "fit")]
    assert history.keys == ["micro_train_loss", "train_loss", "val_accuracy", "val_loss"]
    for key in history.keys:
        assert getattr(history, key) == getattr(expected, key), key
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_datamodule_with_val_data_validates_on_val_data(pl):
    torch.manual_seed(0)
    model = Net()
    reference = copy.deepcopy(model)
    data = datamodule_class(pl)()
    other = make_loader(make_dataset(20, seed=5), 10)
    history = sgd_fit(model, data, other)
    expected = sgd_fit(reference, train_loader(), make_loader(make_dataset(20, seed=5), 10))
    assert data.calls == ["prepare_data", ("setup", "fit")]
    assert history.val_loss == expected.val_loss
    assert history.train_loss == expected.train_loss


def test_datamodule_without_val_dataloader_trains_without_validation(pl):
    class TrainOnly(pl.LightningDataModule):
        def train_dataloader(self):
            return train_loader()

    history = sgd_fit(Net(), TrainOnly())
    assert history.keys == ["micro_train_loss", "train_loss"]


def test_datamodule_in_evaluate_and_predict(pl):
    model = Net()
    data = datamodule_class(pl)()
    evaluation = model.evaluate(data, metrics={"loss": nn.CrossEntropyLoss()}, gpu=False)
    predictions = model.predict(data, gpu=False)
    assert data.calls == [
        "prepare_data",
        ("setup", "validate"),
        "prepare_data",
        ("setup", "predict"),
    ]
    x, y = make_dataset(30, seed=2).tensors
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(predictions, expected)
    assert evaluation.loss == pytest.approx(nn.functional.cross_entropy(expected, y).item())


def test_datamodule_without_the_needed_loader_is_refused_before_running(pl):
    class TrainOnly(pl.LightningDataModule):
        def train_dataloader(self):
            return train_loader()

    with pytest.raises(ValueError, match="defines `predict_dataloader` for predict"):
        Net().predict(TrainOnly())
    with pytest.raises(ValueError, match="defines `train_dataloader` for fit"):
        sgd_fit(Net(), pl.LightningDataModule())


def test_the_datamodules_namespace_chooses_the_calls_namespace():
    import lightning.pytorch as L
    import pytorch_lightning

    data = datamodule_class(L)()
    with pytest.raises(TypeError, match=r"both `pytorch_lightning`.*the data"):
        sgd_fit(Net(), data, callbacks=[pytorch_lightning.callbacks.LearningRateMonitor()])


# §4 loaders without a length: the progress loggers draw a counter


class Stream(IterableDataset):
    def __iter__(self):
        return iter(zip(*make_dataset(20, seed=3).tensors, strict=True))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_loggers_without_a_total(tmp_path):
    terminal = Terminal()
    model = Net()
    history = sgd_fit(
        model,
        DataLoader(Stream(), batch_size=8),
        DataLoader(Stream(), batch_size=8),
        epochs=1,
        callbacks=[xnn.BatchProgressLogger(file=terminal)],
    )
    text = terminal.getvalue()
    assert text.startswith("Epoch 1/1:\n\x1b[2K [0 batches] [Elapsed ")
    assert "validating 0/None" not in text and "validating 0 " in text
    assert f"val_loss: {history.val_loss[0]:.5f}" in text
    predictions = Terminal()
    output = model.predict(
        DataLoader(Stream(), batch_size=8),
        callbacks=[xnn.PredictionProgressLogger(file=predictions)],
    )
    assert output.shape == (20, 3)
    drawn = predictions.getvalue()
    assert drawn.startswith("\x1b[2K [0 batches] [Elapsed ")
    # the count reaches the 3 batches before the summary, however fast they ran
    last = r"\[3 batches\] \d+\.\d\d batches/s \[Elapsed \S+\]\r\x1b\[2K \[Elapsed "
    assert re.search(last, drawn), drawn


def test_progress_bar_without_a_total_counts_steps():
    terminal = Terminal()
    bar = ProgressBar(None, terminal)
    for _ in range(3):
        bar._drawn_at = -1.0  # draw every step
        bar.step()
    bar.finish({"a": 1.0})
    lines = terminal.getvalue().split("\r")
    # a running count of batches and their rate, as tqdm shows
    assert lines[0].startswith("\x1b[2K [0 batches] [Elapsed ")
    for i, line in enumerate(lines[1:4], 1):
        noun = "batch" if i == 1 else "batches"
        assert re.match(rf"\x1b\[2K \[{i} {noun}\] \d+\.\d\d batches/s \[Elapsed ", line), line
    assert lines[4].startswith("\x1b[2K [Elapsed 0:00:0") and lines[4].endswith("a: 1.00000\n")


# §4 several validation loaders are refused up front


def test_several_validation_loaders_are_refused_before_training():
    model = Net()
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=r"Expected val_data to be one loader\. Received: a list"):
        sgd_fit(model, train_loader(), [val_loader(), val_loader()])
    with pytest.raises(ValueError, match=r"Expected data to be one loader\. Received: a dict"):
        model.evaluate({"a": val_loader(), "b": val_loader()}, metrics={"acc": X.accuracy})
    for a, b in zip(model.parameters(), before.parameters(), strict=True):
        assert torch.equal(a, b)


# §4 other batch shapes: the error says how to proceed


def test_dict_and_triple_batches_name_the_way_forward():
    data = make_dataset(16)
    dicts = DataLoader([{"x": x, "y": y} for x, y in zip(*data.tensors, strict=True)], 8)
    triples = DataLoader([(x, y, 1.0) for x, y in zip(*data.tensors, strict=True)], 8)
    with pytest.raises(ValueError, match=r"Received: dict. .*'Writing a small engine'"):
        sgd_fit(Net(), dicts, epochs=1)
    with pytest.raises(ValueError, match=r"Received: list of length 3. .*override eval_batch"):
        sgd_fit(Net(), triples, epochs=1)


# §4 ckpt_path="last" and "best" as in Lightning


def test_ckpt_path_last_resumes_from_the_last_checkpoint(pl, tmp_path):
    def run(model, epochs, ckpt_path=None):
        checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
        return sgd_fit(
            model,
            train_loader(),
            val_loader(),
            epochs,
            callbacks=[checkpoint],
            ckpt_path=ckpt_path,
        )

    torch.manual_seed(0)
    model = Net()
    reference = copy.deepcopy(model)
    run(model, 2)
    resumed = run(model, 3, ckpt_path="last")
    straight = sgd_fit(reference, train_loader(), val_loader(), 3)
    assert len(resumed) == 3
    assert resumed.train_loss == pytest.approx(straight.train_loss, abs=1e-6)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_ckpt_path_last_without_a_checkpoint_starts_from_scratch(pl, tmp_path):
    # Lightning: "ckpt_path='last' is set, but there is no last checkpoint available" -> none.
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    history = sgd_fit(Net(), train_loader(), epochs=1, callbacks=[checkpoint], ckpt_path="last")
    assert len(history) == 1


def test_ckpt_path_best_is_resolved_by_lightning(pl, tmp_path):
    with pytest.raises(ValueError, match='ckpt_path="best"'):
        sgd_fit(Net(), train_loader(), epochs=1, ckpt_path="best")
    with pytest.raises(FileNotFoundError, match=r"missing.ckpt"):
        sgd_fit(Net(), train_loader(), epochs=1, ckpt_path=tmp_path / "missing.ckpt")


# §4 checkpoints hold the user's model only, and load into it


class Binary(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 1)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


def test_checkpoints_hold_the_model_only_and_load_into_the_plain_model(pl, tmp_path):
    data = make_dataset(32)
    loader = make_loader(torch.utils.data.TensorDataset(data.tensors[0], data.tensors[1] % 2.0))
    model = Binary()
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    model.fit(
        loader,
        val_data=loader,
        epochs=1,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0])),
        metrics={"accuracy": X.accuracy},
        callbacks=[checkpoint],
        gpu=False,
    )
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"]
    assert sorted(state) == ["model.linear.bias", "model.linear.weight"]
    fresh = xnn.load_checkpoint_weights(Binary(), tmp_path / "last.ckpt")
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_load_checkpoint_weights_of_a_lightning_module_and_refusals(pl, tmp_path):
    lit_class = lit_module_class(pl)
    model = lit_class()
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    model.fit(train_loader(), epochs=1, callbacks=[checkpoint], gpu=False)
    fresh = xnn.load_checkpoint_weights(lit_class(seed=1), tmp_path / "last.ckpt")
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(KeyError, match="Expected a Lightning checkpoint"):
        xnn.load_checkpoint_weights(Net(), tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match=r"size mismatch|Missing key|Received: .*, which has no"):
        xnn.load_checkpoint_weights(Net(), tmp_path / "last.ckpt")


# §5 LightningModule estimators: their own predict_step and validation_step, per-epoch logs


def lit_module_class(pl):
    class Lit(xnn.Estimator, pl.LightningModule):
        def __init__(self, seed=0):
            super().__init__()
            torch.manual_seed(seed)
            self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            return self.layers(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            if self.current_epoch % 2 == 0:
                self.log("even_epochs", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_acc", (self(x).argmax(-1) == y).float().mean())
            if self.current_epoch == 1:
                self.log("val_once", torch.tensor(1.0))

        def predict_step(self, batch, batch_idx):
            return self(batch[0]).softmax(-1)

        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.1)

    return Lit


def test_lightning_module_predict_uses_its_predict_step(pl):
    model = lit_module_class(pl)()
    predictions = model.predict(val_loader(), gpu=False)
    with torch.no_grad():
        expected = model(make_dataset(30, seed=2).tensors[0]).softmax(-1)
    torch.testing.assert_close(predictions, expected)


def test_lightning_module_evaluate_returns_what_validation_step_logs(pl):
    model = lit_module_class(pl)()
    x, y = make_dataset(30, seed=2).tensors
    with torch.no_grad():
        y_pred = model(x)
    # Lightning's mean over batches of the per-batch accuracy (equal batch sizes of 10)
    accuracy = (y_pred.argmax(-1) == y).float().mean().item()
    evaluation = model.evaluate(val_loader(), gpu=False)
    assert evaluation.to_dict() == {"val_acc": pytest.approx(accuracy)}
    assert evaluation.val_acc == pytest.approx(accuracy)
    both = model.evaluate(val_loader(), metrics={"loss": nn.CrossEntropyLoss()}, gpu=False)
    assert both.val_acc == pytest.approx(accuracy)
    assert both.loss == pytest.approx(nn.functional.cross_entropy(y_pred, y).item())


def test_values_logged_in_some_epochs_are_nan_in_the_others(pl):
    model = lit_module_class(pl)()
    history = model.fit(train_loader(), val_data=val_loader(), epochs=4, gpu=False)
    assert [math.isnan(v) for v in history.even_epochs] == [False, True, False, True]
    assert [math.isnan(v) for v in history.val_once] == [True, False, True, True]
    assert history.val_once[1] == 1.0
    assert not any(math.isnan(v) for v in history.val_acc)
