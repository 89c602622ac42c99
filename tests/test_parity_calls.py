"""PyBlaze 2.x's call forms of the notebooks, side by side with PyBlaze 2.3.2: ``eval_every`` on
an endless loader, ``val_iterations``, ``predict(iterations=k)``.

Each runs on both runners (the module is in ``BOTH_RUNNERS``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from pyblaze_parity import pnn, pyblaze_history
from torch import nn, optim
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import pyblaze_pl.nn as xnn
from pyblaze_pl._lightning.epoch import validates_after
from pyblaze_pl.testing import assert_histories_close, assert_models_close

TOL = 1e-5


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


TRAIN, VAL = data(48, 0), data(24, 1)


class Endless(IterableDataset):
    """The items of a data set, over and over (no randomness of its own)."""

    def __init__(self, items: TensorDataset) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return (self.items[i] for i in itertools.cycle(range(len(self.items))))


def classifier_pair(train: Any, val: Any, epochs: int, **kwargs: Any) -> tuple[Any, ...]:
    torch.manual_seed(0)
    ours = nn.Linear(4, 3)
    theirs = nn.Linear(4, 3)
    theirs.load_state_dict(ours.state_dict())
    results = []
    for lib, model in ((pnn, theirs), (xnn, ours)):
        torch.manual_seed(9)
        history = lib.MLEEngine(model).train(
            train(),
            val_data=val(),
            epochs=epochs,
            optimizer=optim.SGD(model.parameters(), lr=0.1),
            loss=nn.CrossEntropyLoss(),
            gpu=False,
            **kwargs,
        )
        results += [model, history]
    return tuple(results)


def test_eval_every_on_an_endless_loader_matches_pyblaze() -> None:
    # PyBlaze: epochs // eval_every epochs of eval_every batches, from one iterator
    theirs, their_history, ours, our_history = classifier_pair(
        lambda: DataLoader(Endless(TRAIN), batch_size=8),
        lambda: DataLoader(VAL, batch_size=8),
        epochs=10,
        eval_every=4,
    )
    assert len(our_history) == 2 and len(our_history.micro_train_loss) == 8
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours, theirs, rtol=0, atol=TOL)


def test_val_iterations_on_an_endless_validation_loader_matches_pyblaze() -> None:
    theirs, their_history, ours, our_history = classifier_pair(
        lambda: DataLoader(TRAIN, batch_size=8, shuffle=True),
        lambda: DataLoader(Endless(VAL), batch_size=8),
        epochs=2,
        val_iterations=2,
    )
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours, theirs, rtol=0, atol=TOL)


def test_validation_schedule_of_eval_every() -> None:
    # PyBlaze 2.3.2 validates after epochs 1, 6 and 7 of 7 with eval_every=5 (1-based)
    assert [e + 1 for e in range(7) if validates_after(e, 7, 5)] == [1, 6, 7]
    assert [e + 1 for e in range(3) if validates_after(e, 3, 5)] == [1, 3]
    assert all(validates_after(e, 4, None) for e in range(4))


def test_eval_every_on_a_sized_loader_validates_as_pyblaze() -> None:
    theirs, their_history, ours, our_history = classifier_pair(
        lambda: DataLoader(TRAIN, batch_size=8, shuffle=True),
        lambda: DataLoader(VAL, batch_size=8),
        epochs=7,
        eval_every=5,
    )
    # PyBlaze records val_loss after epochs 1, 6 and 7 only; pyblaze_pl holds NaN for the others
    expected = pyblaze_history(their_history)
    validated = iter(expected["val_loss"])
    expected["val_loss"] = [
        next(validated) if validates_after(e, 7, 5) else float("nan") for e in range(7)
    ]
    assert_histories_close(our_history, expected, rtol=0, atol=TOL)
    assert_models_close(ours, theirs, rtol=0, atol=TOL)


def test_iterations_for_every_engine() -> None:
    model = nn.Linear(4, 3)
    engine = xnn.SupervisedEngine(model)
    loader = DataLoader(Endless(TRAIN), batch_size=8)
    assert engine.predict(loader, iterations=2, gpu=False).shape == (16, 3)


class EpochValues(xnn.TrainingCallback):
    def __init__(self) -> None:
        self.keys: list[list[str]] = []

    def after_epoch(self, metrics: Any) -> None:
        self.keys.append(list(metrics.keys))


def test_wgan_values_reach_the_after_epoch_callbacks() -> None:
    # PyBlaze 2.x: after_epoch receives {'loss_generator', 'loss_critic', 'em_distance'}, so
    # EarlyStopping(metric='em_distance') and the progress loggers see them
    gan = nn.Module()
    gan.generator, gan.critic = nn.Linear(2, 2), nn.Linear(2, 1)
    noise = DataLoader(TensorDataset(torch.randn(48, 2)), batch_size=8)
    real = DataLoader(TensorDataset(torch.randn(32, 2)), batch_size=8)
    seen = EpochValues()
    xnn.WGANEngine(gan, expects_data_target=True).train(
        xnn.ZipDataLoader(noise, real, 3, 2),
        epochs=1,
        callbacks=[seen],
        generator_optimizer=optim.SGD(gan.generator.parameters(), lr=0.01),
        critic_optimizer=optim.SGD(gan.critic.parameters(), lr=0.01),
        generator_loss=xnn.WassersteinLossGenerator(),
        critic_loss=xnn.WassersteinLossCritic(),
        critic_iterations=2,
        gpu=False,
    )
    assert {"em_distance", "loss_critic", "loss_generator"} <= set(seen.keys[0])
