"""What moves between pyblaze_pl and plain Lightning (issue 22): checkpoints resume either way
with the same global_step and epoch, `trainer.datamodule` is the user's DataModule, and
BackboneFinetuning trains the backbone as in plain Lightning."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from conftest import Net, make_dataset, make_loader, plain_trainer
from torch import nn, optim

import pyblaze_pl.nn as xnn
from pyblaze_pl.testing import assert_models_close


@pytest.fixture(params=["pytorch_lightning", "lightning.pytorch"])
def pl(request):
    return importlib.import_module(request.param)


def train_loader():
    return make_loader(make_dataset(40), 4)  # 10 batches: 10 steps an epoch


def lit_class(pl):
    class Lit(xnn.Estimator, pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            return self.layers(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.1)

    return Lit


def progress_class(pl):
    class Progress(pl.Callback):
        """global_step and current_epoch when training starts and ends."""

        def on_train_start(self, trainer, pl_module):
            self.start = (trainer.global_step, trainer.current_epoch)

        def on_train_end(self, trainer, pl_module):
            self.end = (trainer.global_step, trainer.current_epoch)

    return Progress


def uninterrupted(pl, folder, epochs=2):
    model = lit_class(pl)()
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=folder, save_last=True)
    plain_trainer(pl, epochs, [checkpoint]).fit(model, train_loader())
    return model


def fit_with_last(pl, folder):
    """One epoch of a LightningModule estimator's fit with ``save_last``; the checkpoint."""
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=folder, save_last=True)
    lit_class(pl)().fit(train_loader(), epochs=1, callbacks=[checkpoint], gpu=False)
    return torch.load(folder / "last.ckpt", weights_only=True)


def asked_for_callbacks(caught):
    return [
        str(w.message) for w in caught if "Please add the following callbacks" in str(w.message)
    ]


# Point 5: checkpoints interchange with plain Lightning


def test_a_checkpoint_of_fit_resumes_in_plain_lightning(pl, tmp_path):
    checkpoint = fit_with_last(pl, tmp_path)
    assert (checkpoint["global_step"], checkpoint["epoch"]) == (10, 0)
    resumed, progress = lit_class(pl)(), progress_class(pl)()
    callbacks = [progress, pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "again", save_last=True)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain_trainer(pl, 2, callbacks).fit(
            resumed, train_loader(), ckpt_path=tmp_path / "last.ckpt"
        )
    assert asked_for_callbacks(caught) == []
    assert (progress.start, progress.end) == ((10, 1), (20, 2))
    expected = uninterrupted(pl, tmp_path / "uninterrupted")
    assert_models_close(resumed, expected, rtol=0, atol=1e-6)


def test_a_plain_lightning_checkpoint_resumes_in_fit(pl, tmp_path):
    first = lit_class(pl)()
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    plain_trainer(pl, 1, [checkpoint]).fit(first, train_loader())
    model, progress = lit_class(pl)(), progress_class(pl)()
    callbacks = [progress, pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "again", save_last=True)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(
            train_loader(),
            epochs=2,
            callbacks=callbacks,
            gpu=False,
            ckpt_path=tmp_path / "last.ckpt",
        )
    assert asked_for_callbacks(caught) == []
    assert (progress.start, progress.end) == ((10, 1), (20, 2))
    assert len(history) == 1  # the epoch trained here: the plain checkpoint holds no History
    saved = torch.load(tmp_path / "again" / "last.ckpt", weights_only=True)
    assert (saved["global_step"], saved["epoch"]) == (20, 1)
    expected = uninterrupted(pl, tmp_path / "uninterrupted")
    assert_models_close(model, expected, rtol=0, atol=1e-6)


def test_the_runs_state_has_a_checkpoint_key_of_its_own(pl, tmp_path):
    checkpoint = fit_with_last(pl, tmp_path)
    assert not any("RunHooks" in key for key in checkpoint["callbacks"])
    assert len(checkpoint["pyblaze_pl"]["metrics"]) == 1


def engine_fit(model, epochs, callbacks, **kwargs):
    return model.fit(
        train_loader(),
        epochs=epochs,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=callbacks,
        gpu=False,
        **kwargs,
    )


def resumed_engine_fit(pl, folder, ckpt_path):
    """Two epochs of an engine's fit resumed from ``ckpt_path``; its progress and History."""
    progress = progress_class(pl)()
    again = pl.callbacks.ModelCheckpoint(dirpath=folder / "again", save_last=True)
    torch.manual_seed(0)
    return progress, engine_fit(Net(), 2, [progress, again], ckpt_path=ckpt_path)


def test_an_engines_checkpoint_resumes_global_step_and_epoch(pl, tmp_path):
    torch.manual_seed(0)
    first = engine_fit(Net(), 1, [pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    progress, history = resumed_engine_fit(pl, tmp_path, tmp_path / "last.ckpt")
    assert (progress.start, progress.end) == ((10, 1), (20, 2))
    assert history.micro_train_loss[:10] == first.micro_train_loss
    assert len(history) == 2


def test_a_checkpoint_of_release_0_1_0_still_resumes_its_history(pl, tmp_path):
    # 0.1.0 kept the run's state as the callback's state ("callbacks" -> "RunHooks").
    torch.manual_seed(0)
    first = engine_fit(Net(), 1, [pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    checkpoint["callbacks"]["RunHooks"] = checkpoint.pop("pyblaze_pl")
    torch.save(checkpoint, tmp_path / "old.ckpt")
    progress, history = resumed_engine_fit(pl, tmp_path, tmp_path / "old.ckpt")
    assert (progress.start, progress.end) == ((10, 1), (20, 2))
    assert history.micro_train_loss[:10] == first.micro_train_loss
    assert len(history) == 2


# Point 6: trainer.datamodule is the user's DataModule


def classes_datamodule(pl):
    class Data(pl.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.num_classes = 3

        def train_dataloader(self):
            return make_loader(make_dataset(64), 16)

        def val_dataloader(self):
            return make_loader(make_dataset(30, seed=2), 10)

    return Data


def reader_class(pl):
    class ReadsDataModule(pl.Callback):
        """What trainer.datamodule is when training starts and when validation ends."""

        def __init__(self):
            self.seen = []

        def on_train_start(self, trainer, pl_module):
            self.seen.append(("start", trainer.datamodule, trainer.datamodule.num_classes))

        def on_validation_end(self, trainer, pl_module):
            self.seen.append(("validated", trainer.datamodule, trainer.datamodule.num_classes))

    return ReadsDataModule


def datamodule_fit(model, dm, reader, val_data=None):
    return model.fit(
        dm,
        val_data=val_data,
        epochs=2,
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=[reader],
        gpu=False,
    )


@pytest.mark.parametrize("with_val_data", [False, True], ids=["own_val", "val_data"])
def test_trainer_datamodule_is_the_users_datamodule(pl, with_val_data):
    dm, reader = classes_datamodule(pl)(), reader_class(pl)()
    before = dict(vars(dm))
    torch.manual_seed(0)
    model = Net()
    val_data = make_loader(make_dataset(20, seed=5), 10) if with_val_data else None
    history = datamodule_fit(model, dm, reader, val_data)
    assert [kind for kind, _, _ in reader.seen] == ["start", "validated", "validated"]
    assert all(seen is dm and classes == 3 for _, seen, classes in reader.seen)
    # the DataModule is left as it was (Lightning sets its trainer, as in a plain run)
    assert "val_dataloader" not in vars(dm)
    assert {k: v for k, v in vars(dm).items() if k != "trainer"} == {
        k: v for k, v in before.items() if k != "trainer"
    }
    assert len(dm.val_dataloader().dataset) == 30
    # validation ran on val_data when given, else on the DataModule's val_dataloader
    torch.manual_seed(0)
    reference = Net()
    expected = reference.fit(
        make_loader(make_dataset(64), 16),
        val_data=val_data if with_val_data else make_loader(make_dataset(30, seed=2), 10),
        epochs=2,
        optimizer=optim.SGD(reference.parameters(), lr=0.1),
        loss=nn.CrossEntropyLoss(),
        gpu=False,
    )
    assert history.val_loss == expected.val_loss


def test_a_failed_fit_leaves_the_datamodule_unchanged(pl):
    class Fails(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            raise RuntimeError("stop here")

    dm = classes_datamodule(pl)()
    model = Net()
    with pytest.raises(RuntimeError, match="stop here"):
        datamodule_fit(model, dm, Fails(), make_loader(make_dataset(20, seed=5), 10))
    assert "val_dataloader" not in vars(dm)
    assert len(dm.val_dataloader().dataset) == 30


# Point 8: BackboneFinetuning trains the backbone at its reduced learning rate


class WithBackbone(xnn.Estimator, nn.Module):
    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


def plain_backbone_class(pl):
    class PlainBackbone(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.backbone(x))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):  # Lightning's pattern: the head alone
            return optim.SGD(self.head.parameters(), lr=0.1)

    return PlainBackbone


def backbone_fit(pl, model, parameters):
    callback = pl.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=1)
    return model.fit(
        train_loader(),
        epochs=3,
        optimizer=optim.SGD(parameters, lr=0.1),
        loss=nn.CrossEntropyLoss(),
        callbacks=[callback],
        gpu=False,
    )


def test_backbone_finetuning_with_an_optimizer_over_all_parameters_is_refused(pl):
    model = WithBackbone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        backbone_fit(pl, model, model.parameters())
    message = str(info.value)
    assert message.startswith("Expected an optimizer over the parameters outside `model.backbone`")
    assert "Received: a SGD that already holds 2 of the backbone's 2 parameters" in message
    assert "backbone_initial_ratio_lr=0.1" in message
    assert "n.startswith('backbone.')" in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing ran


def test_backbone_finetuning_with_a_head_optimizer_matches_plain_lightning(pl):
    model = WithBackbone()
    initial = [p.detach().clone() for p in model.backbone.parameters()]
    history = backbone_fit(pl, model, model.head.parameters())
    assert len(history) == 3
    plain = plain_backbone_class(pl)()
    callback = pl.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=1)
    trainer = plain_trainer(pl, 3, [callback], enable_checkpointing=False)
    trainer.fit(plain, train_loader())
    assert trainer.optimizers[0].param_groups[1]["lr"] < 0.1  # the backbone's reduced rate
    assert_models_close(model, plain, rtol=0, atol=1e-6)
    assert not all(
        torch.equal(a, b) for a, b in zip(initial, model.backbone.parameters(), strict=True)
    )
