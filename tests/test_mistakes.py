"""Common mistakes: refused before training (weights untouched), or explained at the first batch
with the culprit named and the original error chained (issue 16, sections 1 and 2)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchmetrics
from conftest import Net, make_dataset, make_loader
from pytorch_lightning.callbacks import EarlyStopping as LightningEarlyStopping
from torch import nn, optim
from torch.utils.data import TensorDataset

import pyblaze_pl.nn as xnn


def loaders():
    return make_loader(make_dataset(64), 16), make_loader(make_dataset(30, seed=2), 10)


def assert_untouched(net, before):
    after = net.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key


@pytest.fixture
def before(net):
    return copy.deepcopy(net.state_dict())


# 1. silent no-ops


def test_optimizer_over_another_models_parameters_is_refused(net, before):
    train, val = loaders()
    other = copy.deepcopy(net)  # a copy: same shapes, other tensors
    with pytest.raises(ValueError) as info:
        net.fit(
            train, val, optimizer=optim.SGD(other.parameters(), lr=0.1), loss=nn.CrossEntropyLoss()
        )
    message = str(info.value)
    assert "none of which belongs to the model" in message
    assert "Net" in message and "SGD over 4 parameter tensors" in message
    assert "(16, 8)" in message  # names what was passed
    assert_untouched(net, before)


def test_optimizer_over_the_model_and_the_loss_is_accepted(net):
    train, _ = loaders()

    class LearnedScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, y_pred, y_true):
            return nn.functional.cross_entropy(y_pred * self.scale, y_true)

    loss = LearnedScale()
    opt = optim.SGD([*net.parameters(), *loss.parameters()], lr=0.1)
    history = net.fit(train, epochs=1, optimizer=opt, loss=loss)
    assert len(history) == 1
    assert loss.scale.item() != 1.0  # the loss's parameter trained too


def test_loss_class_instead_of_instance(net, before):
    train, val = loaders()
    with pytest.raises(TypeError, match=r"pass an instance: nn\.CrossEntropyLoss\(\)") as info:
        net.fit(train, val, optimizer=optim.SGD(net.parameters(), lr=0.1), loss=nn.CrossEntropyLoss)
    assert "the class torch.CrossEntropyLoss" in str(info.value)
    assert_untouched(net, before)


@pytest.mark.parametrize(
    "callback",
    [xnn.EarlyStopping(patience=2), LightningEarlyStopping(monitor="val_accuracy")],
    ids=["pyblaze", "lightning"],
)
def test_early_stopping_without_val_data(net, before, callback):
    train, _ = loaders()
    with pytest.raises(ValueError) as info:
        net.fit(
            train,
            epochs=3,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            callbacks=[callback],
        )
    message = str(info.value)
    metric = "val_loss" if isinstance(callback, xnn.EarlyStopping) else "val_accuracy"
    assert f"watches {metric!r}" in message
    assert "Received: val_data=None" in message
    assert f"callbacks[0] ({type(callback).__name__})" in message
    assert_untouched(net, before)


def test_early_stopping_on_train_loss_without_val_data_is_accepted(net):
    train, _ = loaders()
    history = net.fit(
        train,
        epochs=2,
        optimizer=optim.SGD(net.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=[xnn.EarlyStopping("train_loss", patience=5)],
    )
    assert len(history) == 2


# 2. late errors, caught before training or at the first batch


@pytest.mark.parametrize(
    ("keyword", "suggestion"),
    [("epoch", "epochs"), ("callback", "callbacks"), ("val_loader", "val_data")],
)
def test_misspelt_fit_keyword_names_fits_arguments(net, before, keyword, suggestion):
    train, val = loaders()
    with pytest.raises(TypeError) as info:
        net.fit(
            train,
            val,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            **{keyword: 3},
        )
    message = str(info.value)
    assert f"Did you mean `{suggestion}` instead of `{keyword}`?" in message
    assert "fit (SupervisedEngine.train) accepts: train_data, val_data, epochs" in message
    assert "gradient_accumulation_steps" in message and "ckpt_path" in message
    assert f"Received: {keyword}=3." in message
    assert "batch_loss" not in message  # not reported against the internal signature
    assert_untouched(net, before)


def test_optimiser_spelling_says_where_the_optimizer_went(net, before):
    train, val = loaders()
    with pytest.raises(TypeError) as info:
        net.fit(train, val, optimiser=optim.SGD(net.parameters(), lr=0.1), loss=nn.MSELoss())
    message = str(info.value)
    assert "Received: optimizer=None; an optimizer (SGD) was passed as `optimiser=`" in message
    assert "did you mean `optimizer`?" in message
    assert_untouched(net, before)


def test_positional_optimizer_says_what_was_passed_where(net, before):
    train, val = loaders()
    with pytest.raises(TypeError) as info:
        net.fit(train, val, optim.SGD(net.parameters(), lr=0.1))
    message = str(info.value)
    assert "Expected epochs at position 3 of fit(train_data, val_data, epochs" in message
    assert "Received: an optimizer (SGD) as `epochs`; pass it by keyword: optimizer=" in message
    assert_untouched(net, before)


@pytest.mark.parametrize("name", ["train_data", "val_data"])
def test_keras_style_arrays_are_refused_up_front(net, before, name):
    train, val = loaders()
    x, y = torch.randn(30, 8), torch.randint(0, 3, (30,))
    data = {"train_data": train, "val_data": val, name: (x, y)}
    with pytest.raises(TypeError) as info:
        net.fit(
            data["train_data"],
            data["val_data"],
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
        )
    message = str(info.value)
    assert f"Expected {name} to be a DataLoader" in message
    assert "tuple of 2 arrays (a tensor of shape (30, 8), a tensor of shape (30,))" in message
    assert "TensorDataset(x, y).loader(batch_size=32" in message
    assert_untouched(net, before)


class CountingNet(Net):
    """Counts forward passes in training mode."""

    def __init__(self):
        super().__init__()
        self.train_calls = 0

    def forward(self, x):
        self.train_calls += self.training
        return super().forward(x)


def test_metric_with_the_wrong_signature_is_refused_before_training(net, before):
    train, val = loaders()
    with pytest.raises(TypeError) as info:
        net.fit(
            train,
            val,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            metrics={"top": lambda y_pred: y_pred.max()},
        )
    message = str(info.value)
    assert "Expected metrics['top'] to take (y_pred, y_true)" in message
    assert "Received: <lambda>(y_pred)" in message
    assert_untouched(net, before)


def test_metric_class_instead_of_instance_is_refused(net, before):
    train, val = loaders()
    with pytest.raises(TypeError, match=r"metrics\['f1'\].*pass an instance: F1Score\(\.\.\.\)"):
        net.fit(
            train,
            val,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            metrics={"f1": torchmetrics.F1Score},
        )
    assert_untouched(net, before)


@pytest.mark.parametrize(
    ("metric", "when", "size"),
    [
        # streaming metrics fail on the first validation batch
        (torchmetrics.F1Score(task="binary"), "on a validation batch", 10),
        # plain functions are called once, on all validation outputs (PyBlaze's semantics)
        (
            lambda y_pred, y_true: (y_pred == y_true).float().mean(),
            "on the validation outputs, concatenated",
            30,
        ),
    ],
    ids=["torchmetrics", "function"],
)
def test_metric_shape_mismatch_is_named_in_the_first_validation(metric, when, size):
    torch.manual_seed(0)
    net = CountingNet()
    train, val = loaders()
    with pytest.raises(RuntimeError) as info:
        net.fit(
            train,
            val,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            metrics={"accuracy": xnn.functional.accuracy, "bad": metric},
        )
    message = str(info.value)
    assert f"metrics['bad'] failed {when}" in message
    assert f"y_pred: tensor of shape ({size}, 3), dtype torch.float32, on cpu" in message
    assert f"y_true: tensor of shape ({size},), dtype torch.int64, on cpu" in message
    assert info.value.__cause__ is not None  # the original, chained
    assert net.train_calls == 4  # in the first epoch (of 4 training batches)


def fit_first_batch_error(net, loss, data=None):
    data = data or make_dataset(64)
    with pytest.raises(Exception) as info:
        net.fit(
            make_loader(data, 16),
            epochs=1,
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=loss,
        )
    return info.value


def float_targets():
    x, y = make_dataset(64).tensors
    return TensorDataset(x, y.float())


def test_float_targets_with_cross_entropy(net, before):
    error = fit_first_batch_error(net, nn.CrossEntropyLoss(), float_targets())
    message = str(error)
    assert isinstance(error, RuntimeError) and isinstance(error.__cause__, RuntimeError)
    assert message.startswith(str(error.__cause__))  # the original message comes first
    assert "SupervisedEngine.train_batch failed on batch 0 of epoch 1" in message
    assert "loss: CrossEntropyLoss()" in message
    assert "model output (y_pred): tensor of shape (16, 3), dtype torch.float32" in message
    assert "target (y_true): tensor of shape (16,), dtype torch.float32" in message
    assert "likely fix: CrossEntropyLoss expects class indices" in message
    assert "(e.g. y.long())" in message
    assert_untouched(net, before)


def test_class_indices_with_mse(net, before):
    error = fit_first_batch_error(net, nn.MSELoss())
    message = str(error)
    assert "loss: MSELoss()" in message
    assert "target (y_true): tensor of shape (16,), dtype torch.int64" in message
    assert "MSELoss expects float targets of the predictions' shape (16, 3)" in message
    assert "For class indices, use nn.CrossEntropyLoss()." in message
    assert error.__cause__ is not None
    assert_untouched(net, before)


def test_class_indices_with_bce_with_logits(before, net):
    error = fit_first_batch_error(net, nn.BCEWithLogitsLoss())
    assert isinstance(error, ValueError)  # torch's type is kept
    message = str(error)
    assert "BCEWithLogitsLoss expects float targets of the predictions' shape (16, 3)" in message
    assert "batch 0" in message
    assert_untouched(net, before)


def test_float64_model(net, before):
    net.double()
    before = copy.deepcopy(net.state_dict())
    error = fit_first_batch_error(net, nn.CrossEntropyLoss())
    message = str(error)
    assert "model parameters: torch.float64 on cpu" in message
    assert "the model's parameters are torch.float64 but the inputs are torch.float32" in message
    assert "model.float()" in message
    assert_untouched(net, before)


def test_tensors_on_another_device(net, before):
    # A loss whose class weights live elsewhere (here: the meta device; on a GPU machine the CPU).
    loss = nn.CrossEntropyLoss(weight=torch.ones(3, device="meta"))
    error = fit_first_batch_error(net, loss)
    message = str(error)
    assert "tensors are on several devices (cpu, meta)" in message
    assert "give the loss's tensors (e.g. weight=) on the model's device" in message
    assert_untouched(net, before)


def test_inputs_of_another_width(net, before):
    x, y = make_dataset(64).tensors
    error = fit_first_batch_error(net, nn.CrossEntropyLoss(), TensorDataset(x[:, :5], y))
    message = str(error)
    assert "likely fix: a linear layer takes 8 features per sample but received 5." in message
    assert "in_features" in message
    assert_untouched(net, before)


class ConvNet(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))[:, :3]


def test_images_with_channels_last():
    torch.manual_seed(0)
    net = ConvNet()
    images = TensorDataset(torch.randn(32, 8, 8, 3), torch.zeros(32, dtype=torch.long))
    error = fit_first_batch_error(net, nn.CrossEntropyLoss(), images)
    message = str(error)
    assert "likely fix: a convolution takes 3 input channels but received 8." in message
    assert "x.permute(0, 3, 1, 2)" in message


def test_error_in_a_later_batch_names_it(net):
    x, y = make_dataset(64).tensors
    y = y.clone()
    y[40] = 7  # an invalid class in the third batch of 16
    error = fit_first_batch_error(net, nn.CrossEntropyLoss(), TensorDataset(x, y))
    assert "failed on batch 2 of epoch 1" in str(error)
    assert error.__cause__ is not None


# From a Lightning user's trial: LightningModule estimators get the same checks.


def _lit():
    from test_lightning_interop import Lit

    return Lit()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epoch": 1}, r"Received: epoch=1\. Did you mean `epochs` instead of `epoch`\?"),
        ({"optimizer": 0.1}, r"own training_step and configure_optimizers; for optimizer="),
        ({"logger": None}, r"`logger`: a Lightning Trainer option: pass trainer_kwargs="),
    ],
)
def test_lightning_module_fit_keywords_are_checked(kwargs, message):
    model = _lit()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(TypeError, match=message):
        model.fit(make_loader(make_dataset(16), 8), epochs=1, gpu=False, **kwargs)
    torch.testing.assert_close(model.state_dict(), before)


@pytest.mark.parametrize("keyword", ["optimizer", "loss"])
def test_lightning_module_engine_keyword_is_not_both_accepted_and_unknown(keyword):
    # Issue 22.7: the message listed `optimizer` as accepted, then asked "Did you mean
    # `optimizer` instead of `optimizer`?".
    with pytest.raises(TypeError) as info:
        _lit().fit(make_loader(make_dataset(16), 8), epochs=1, gpu=False, **{keyword: 0.1})
    message = str(info.value)
    accepted = message.split("accepts: ", 1)[1].split(". Received", 1)[0].split(", ")
    assert keyword not in accepted
    assert "epochs" in accepted and "trainer_kwargs" in accepted
    assert f"instead of `{keyword}`" not in message
    assert "set `__engine__ = xnn.SupervisedEngine`" in message


def test_lightning_module_without_validation_step_refuses_val_data():
    import pytorch_lightning as pl

    class TrainOnly(xnn.Estimator, pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 3)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.linear(x), y)

        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.1)

    model = TrainOnly()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"TrainOnly to define validation_step"):
        model.fit(
            make_loader(make_dataset(16), 8),
            val_data=make_loader(make_dataset(8), 8),
            gpu=False,
        )
    torch.testing.assert_close(model.state_dict(), before)


def test_runner_is_accepted_by_lightning_module_estimators():
    model = _lit()
    history = model.fit(make_loader(make_dataset(16), 8), epochs=1, gpu=False, runner="trainer")
    assert len(history) == 1
    with pytest.raises(ValueError, match=r"Fabric runner.*a LightningModule trained by its own"):
        model.fit(make_loader(make_dataset(16), 8), epochs=1, gpu=False, runner="lean")


def test_checkpoint_monitoring_a_validation_metric_without_val_data_is_refused(net, tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    with pytest.raises(ValueError, match=r"callbacks\[0\] \(ModelCheckpoint\), which watches "):
        net.fit(
            make_loader(make_dataset(16), 8),
            optimizer=optim.SGD(net.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            callbacks=[ModelCheckpoint(dirpath=tmp_path, monitor="val_loss")],
            gpu=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_loggers_passed_as_callbacks_and_unknown_trainer_options(net):
    from pytorch_lightning.loggers import CSVLogger

    kwargs = {"optimizer": optim.SGD(net.parameters(), lr=0.1), "loss": nn.CrossEntropyLoss()}
    loader = make_loader(make_dataset(16), 8)
    with pytest.raises(TypeError, match=r"logger goes to trainer_kwargs=\{'logger': CSVLogger"):
        net.fit(loader, callbacks=[CSVLogger("runs")], gpu=False, **kwargs)
    with pytest.raises(
        TypeError, match=r"'gradient_clip_value'\. Did you mean 'gradient_clip_val'"
    ):
        net.fit(loader, trainer_kwargs={"gradient_clip_value": 1.0}, gpu=False, **kwargs)
