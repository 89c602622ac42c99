"""PyBlaze 2.x's generative models side by side with PyBlaze 2.3.2: normalizing flows and their
losses (trained with ``MLEEngine``), the VAE (``AutoencoderEngine``, ``VAELoss``) and the WGAN
(``WGANEngine`` and its losses).

Every pair starts from the same weights (ours are copied into PyBlaze's modules with
``load_state_dict``) and draws from torch's global generator in the same order, so per-batch
losses, weights after training, predictions and EM distances must agree within 1e-5. Runs on
both runners (``tests/conftest.py``). PyBlaze is imported as in ``test_parity_pyblaze.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import pytest
import torch
from pyblaze_parity import pnn, pyblaze_history
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

import pyblaze_pl.nn as xnn
from pyblaze_pl.testing import assert_histories_close, assert_models_close

TOL = 1e-5
SEED = 1234


def twin(ours: nn.Module, theirs: nn.Module) -> nn.Module:
    """``theirs`` with ``ours``'s weights and buffers (the names are PyBlaze's)."""
    theirs.load_state_dict(ours.state_dict())
    return theirs


# --- normalizing flows -------------------------------------------------------------------------


def moons(n: int, seed: int) -> torch.Tensor:
    """Two noisy half circles in 2-D (scikit-learn's make_moons, without scikit-learn)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, t.cos(), 1 - t.cos())
    y = torch.where(upper, t.sin(), 0.5 - t.sin())
    return torch.stack([x, y], 1) + 0.1 * torch.randn(n, 2, generator=g)


FLOW_TRAIN, FLOW_VAL = TensorDataset(moons(96, 0)), TensorDataset(moons(40, 1))


def coupling_net() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 2))


def all_transforms(lib: Any, net: nn.Module) -> list[nn.Module]:
    """One of each transform of PyBlaze 2.3.2, as the notebooks stack them."""
    # Batch norm comes first: after it, a shift (MAF's bias) would have a zero gradient, whose
    # float noise Adam would blow up into steps of size lr.
    return [
        lib.BatchNormTransform1d(2),
        lib.AffineTransform(2),
        lib.PlanarTransform(2),
        lib.RadialTransform(2),
        lib.AffineCouplingTransform1d(2, 1, net, constrain_scale=True),
        lib.FlipTransform1d(),
        lib.MaskedAutoregressiveTransform1d(2, 8, 8),
        lib.LeakyReLUTransform(0.5),
        lib.PReLUTransform(2),
        lib.AffineTransform(2),
    ]


def flow_pair(lib_loss: Callable[[Any], nn.Module], epochs: int = 2) -> tuple[Any, ...]:
    """Trains the same flow with PyBlaze's and our MLEEngine; returns engines and histories."""
    torch.manual_seed(0)
    ours = xnn.NormalizingFlow(all_transforms(xnn, coupling_net()))
    theirs = twin(ours, pnn.NormalizingFlow(all_transforms(pnn, coupling_net())))
    results = []
    for lib, model in ((pnn, theirs), (xnn, ours)):
        engine = lib.MLEEngine(model, expects_data_target=False)
        torch.manual_seed(SEED)
        history = engine.train(
            DataLoader(FLOW_TRAIN, batch_size=32, shuffle=True),
            val_data=DataLoader(FLOW_VAL, batch_size=20),
            epochs=epochs,
            optimizer=optim.Adam(model.parameters(), lr=0.01),
            loss=lib_loss(lib),
            gpu=False,
        )
        results += [engine, history]
    return tuple(results)


def test_each_transform_matches_pyblaze_forward_and_log_det() -> None:
    torch.manual_seed(0)
    z = torch.randn(16, 2) * 2
    for ours, theirs in zip(
        all_transforms(xnn, coupling_net()), all_transforms(pnn, coupling_net()), strict=True
    ):
        twin(ours, theirs)
        for training in (True, False):
            ours.train(training), theirs.train(training)
            y, log_det = ours(z)
            their_y, their_log_det = theirs(z)
            torch.testing.assert_close(y, their_y, atol=TOL, rtol=0, msg=repr(ours))
            torch.testing.assert_close(log_det, their_log_det, atol=TOL, rtol=0, msg=repr(ours))
        assert dict(ours.state_dict()).keys() == dict(theirs.state_dict()).keys()


def test_made_masks_and_outputs_match_pyblaze() -> None:
    torch.manual_seed(0)
    ours = xnn.MADE(3, 7, 5, 6)
    theirs = twin(ours, pnn.MADE(3, 7, 5, 6))
    x = torch.randn(4, 3)
    torch.testing.assert_close(ours(x), theirs(x), atol=TOL, rtol=0)
    # autoregressive: output k of each block depends only on inputs before k
    jacobian = torch.autograd.functional.jacobian(lambda v: ours(v[None])[0], x[0])
    for k in range(6):
        assert jacobian[k, k % 3 :].abs().sum() == 0


def test_normalizing_flow_trained_with_mle_engine_matches_pyblaze() -> None:
    theirs, their_history, ours, our_history = flow_pair(lambda lib: lib.TransformedNormalLoss())
    assert sorted(our_history.keys) == ["micro_train_loss", "train_loss", "val_loss"]
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)
    loader = DataLoader(FLOW_VAL, batch_size=20)
    z, log_det = ours.predict(loader, gpu=False)
    theirs.model.eval()  # PyBlaze 2.x predicts in the current mode (eval after validation)
    their_z, their_log_det = theirs.predict(loader, gpu=False)
    torch.testing.assert_close(z, their_z, atol=TOL, rtol=0)
    torch.testing.assert_close(log_det, their_log_det, atol=TOL, rtol=0)


def test_gmm_loss_with_trainable_means_matches_pyblaze() -> None:
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
    theirs, their_history, ours, our_history = flow_pair(
        lambda lib: lib.TransformedGmmLoss(means.clone(), trainable=True), epochs=1
    )
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)


def test_losses_reductions_match_pyblaze() -> None:
    torch.manual_seed(0)
    z, log_det, means = torch.randn(6, 3), torch.randn(6), torch.randn(4, 3)
    for reduction in ("mean", "sum", "none"):
        for ours, theirs in (
            (xnn.TransformedNormalLoss(reduction), pnn.TransformedNormalLoss(reduction)),
            (
                xnn.TransformedGmmLoss(means, reduction=reduction),
                pnn.TransformedGmmLoss(means, reduction=reduction),
            ),
        ):
            torch.testing.assert_close(ours(z, log_det), theirs(z, log_det), atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="Expected reduction to be one of"):
        xnn.TransformedNormalLoss("avg")


def test_coupling_reverse_transforms_the_first_part() -> None:
    # PyBlaze's notebooks alternate reverse=False/True (the flag of PyBlaze before 2.3.2):
    # reverse=True transforms the first fixed_dim features, conditioned on the others.
    net = nn.Linear(2, 2)
    coupling = xnn.AffineCouplingTransform1d(3, 1, net, reverse=True)
    z = torch.randn(5, 3)
    y, log_det = coupling(z)
    mean, log_scale = net(z[:, 1:]).chunk(2, dim=1)
    torch.testing.assert_close(y[:, 1:], z[:, 1:])
    torch.testing.assert_close(y[:, :1], z[:, :1] * log_scale.exp() + mean)
    torch.testing.assert_close(log_det, log_scale.sum(-1))
    with pytest.raises(ValueError, match="Expected fixed_dim to be smaller than dim=3"):
        xnn.AffineCouplingTransform1d(3, 3, net)


# --- variational autoencoder -------------------------------------------------------------------


class VAE(nn.Module):
    """16 features in [0, 1] -> a 2-D Gaussian code -> 16 probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))
        self.decoder = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 16), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # draws from the global generator
        return self.decoder(z), mu, logvar


def pixels(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 16, generator=g), torch.randint(0, 3, (n,), generator=g))


VAE_TRAIN, VAE_VAL = pixels(80, 0), pixels(30, 1)


def vae_pair(metrics: dict[str, Any] | None = None) -> tuple[Any, ...]:
    torch.manual_seed(0)
    ours = VAE()
    theirs = twin(ours, VAE())
    results = []
    for lib, model in ((pnn, theirs), (xnn, ours)):
        engine = lib.AutoencoderEngine(model, expects_data_target=True)
        torch.manual_seed(SEED)
        history = engine.train(
            DataLoader(VAE_TRAIN, batch_size=16, shuffle=True),
            val_data=DataLoader(VAE_VAL, batch_size=16),
            epochs=2,
            optimizer=optim.Adam(model.parameters(), lr=0.01),
            loss=lib.VAELoss(nn.BCELoss(reduction="none")),
            metrics=metrics,
            gpu=False,
        )
        results += [engine, history]
    return tuple(results)


def kl_divergence(x_pred: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, x: torch.Tensor):
    return (-0.5 * (1 + logvar - mu * mu - logvar.exp()).sum(-1)).mean()


def test_vae_with_autoencoder_engine_matches_pyblaze() -> None:
    theirs, their_history, ours, our_history = vae_pair(metrics={"kl": kl_divergence})
    assert sorted(our_history.keys) == ["micro_train_loss", "train_loss", "val_kl", "val_loss"]
    assert_histories_close(our_history, pyblaze_history(their_history), rtol=0, atol=TOL)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)

    loader = DataLoader(VAE_VAL, batch_size=16)
    predictions = []
    for engine in (theirs, ours):
        torch.manual_seed(5)
        predictions.append(engine.predict(loader, gpu=False, reconstruct=True))
    for mine, their in zip(predictions[1], predictions[0], strict=True):
        torch.testing.assert_close(mine, their, atol=TOL, rtol=0)

    # decoding noise: PyBlaze's endless NoiseDataset, limited by iterations=
    torch.manual_seed(6)
    their_images = theirs.predict(pnn.NoiseDataset(2).loader(batch_size=5), iterations=2, gpu=False)
    torch.manual_seed(6)
    normal = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    noise = xnn.NoiseDataset(normal).loader(batch_size=5)  # the notebooks' positional form
    images = ours.predict(noise, iterations=2, reconstruct=False, gpu=False)
    assert images.shape == (10, 16)
    torch.testing.assert_close(images, their_images, atol=TOL, rtol=0)

    evaluation = ours.evaluate(loader, metrics={"kl": kl_divergence}, gpu=False, iterations=1)
    torch.manual_seed(7)
    their_evaluation = theirs.evaluate(loader, metrics={"kl": kl_divergence}, iterations=1)
    assert abs(evaluation.kl - their_evaluation["kl"]) <= TOL


def test_autoencoder_engine_refusals() -> None:
    engine = xnn.AutoencoderEngine(nn.Linear(4, 4))
    loader = DataLoader(TensorDataset(torch.zeros(4, 4)), batch_size=2)
    with pytest.raises(TypeError, match=r"Expected the model \(Linear\) to have a `decoder`"):
        engine.predict(loader, gpu=False)
    with pytest.raises(ValueError, match=r"Expected iterations to be an int >= 1\. Received: 0"):
        engine.predict(loader, iterations=0, reconstruct=True, gpu=False)
    with pytest.raises(ValueError, match="Expected a reconstruction loss with reduction='none'"):
        xnn.VAELoss(nn.BCELoss())


# --- Wasserstein GAN ---------------------------------------------------------------------------


class GAN(nn.Module):
    """2-D noise -> 2-D samples; a critic on 2-D samples."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(2, 12), nn.LeakyReLU(0.2), nn.Linear(12, 2))
        self.critic = nn.Sequential(nn.Linear(2, 12), nn.LeakyReLU(0.2), nn.Linear(12, 1))


REAL = TensorDataset(moons(96, 2), torch.zeros(96))  # (x, y): the labels are dropped
CRITIC_ITERATIONS = 2


def wgan_pair(
    penalty: bool, noise: Callable[[Any], Any], epochs: int = 2, **kwargs: Any
) -> tuple[Any, ...]:
    """Trains the same GAN with PyBlaze's and our WGANEngine."""
    torch.manual_seed(0)
    ours = GAN()
    theirs = twin(ours, GAN())
    results = []
    for lib, model in ((pnn, theirs), (xnn, ours)):
        engine = lib.WGANEngine(model, expects_data_target=True)
        torch.manual_seed(SEED)
        loader = lib.ZipDataLoader(
            noise(lib),
            DataLoader(REAL, batch_size=16, shuffle=True, drop_last=True),
            CRITIC_ITERATIONS + 1,
            CRITIC_ITERATIONS,
        )
        gp = lib.GradientPenalty(model.critic) if penalty else None
        history = engine.train(
            loader,
            epochs=epochs,
            generator_optimizer=optim.Adam(model.generator.parameters(), lr=0.01),
            critic_optimizer=optim.RMSprop(model.critic.parameters(), lr=0.01),
            generator_loss=lib.WassersteinLossGenerator(),
            critic_loss=lib.WassersteinLossCritic(gp),
            critic_iterations=CRITIC_ITERATIONS,
            gpu=False,
            **kwargs,
        )
        results += [engine, history]
    return tuple(results)


def endless_noise(lib: Any) -> DataLoader:
    """PyBlaze's endless noise, as the notebooks build it (ours: the distribution positional)."""
    if lib is pnn:
        return pnn.NoiseDataset(2).loader(batch_size=16)
    normal = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    return xnn.NoiseDataset(normal).loader(batch_size=16)


def fixed_noise(lib: Any) -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(96, 2, generator=torch.Generator())), 16)


WGAN_KEYS = ["em_distance", "loss_critic", "loss_generator"]


def assert_wgan_values_match(ours: xnn.History, theirs: Any) -> None:
    for key in WGAN_KEYS:  # every batch's value, and the epoch means
        assert len(ours[f"batch_{key}"]) == len(getattr(theirs, f"batch_{key}")) > 0
        for name in (key, f"batch_{key}"):
            torch.testing.assert_close(
                torch.tensor(ours[name]),
                torch.tensor(getattr(theirs, name)),
                atol=TOL,
                rtol=0,
                msg=name,
            )
    # the run's own record is the critic's loss
    assert ours.micro_train_loss == ours.batch_loss_critic


def test_wgan_with_weight_clipping_on_endless_noise_matches_pyblaze() -> None:
    theirs, their_history, ours, our_history = wgan_pair(
        penalty=False, noise=endless_noise, clip_weights=(-0.05, 0.05)
    )
    assert sorted(our_history.keys) == sorted(
        ["micro_train_loss", "train_loss", *WGAN_KEYS, *(f"batch_{k}" for k in WGAN_KEYS)]
    )
    assert len(our_history.batch_em_distance) == 2 * 3  # 96 // 16 // 2 batches, 2 epochs
    assert_wgan_values_match(our_history, their_history)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)
    assert max(p.abs().max() for p in ours.model.critic.parameters()) <= 0.05
    samples = []
    for engine, lib in ((theirs, pnn), (ours, xnn)):
        torch.manual_seed(3)
        samples.append(engine.predict(endless_noise(lib), iterations=2, gpu=False))
    assert samples[1].shape == (32, 2)
    torch.testing.assert_close(samples[1], samples[0], atol=TOL, rtol=0)


def test_wgan_with_gradient_penalty_on_endless_noise_matches_pyblaze() -> None:
    # The penalty draws its interpolation weights between the noise draws: both runners must
    # not read a batch ahead of the step (the notebook's form: endless noise and WGAN-GP).
    theirs, their_history, ours, our_history = wgan_pair(penalty=True, noise=endless_noise)
    assert_wgan_values_match(our_history, their_history)
    assert_models_close(ours.model, theirs.model, rtol=0, atol=TOL)


class Skip(xnn.ValueTrainingCallback):
    """Skips the generator on every other batch (read on every batch, as in PyBlaze)."""

    def __init__(self) -> None:
        self.batches = 0

    def after_batch(self, *args: Any) -> None:
        self.batches += 1

    def read(self) -> bool:
        return self.batches % 2 == 1


def test_wgan_skip_generator_callback_and_both_optimizers_registered() -> None:
    torch.manual_seed(0)
    gan = GAN()
    seen: list[int] = []
    probe = []
    if os.environ.get("PYBLAZE_PL_RUNNER") == "trainer":
        import pytorch_lightning as pl

        class Optimizers(pl.Callback):
            def on_train_start(self, trainer: Any, pl_module: Any) -> None:
                seen.append(len(trainer.optimizers))

        probe = [Optimizers()]
    history = xnn.WGANEngine(gan, expects_data_target=True).train(
        xnn.ZipDataLoader(fixed_noise(xnn), DataLoader(REAL, batch_size=16, drop_last=True), 3, 2),
        epochs=1,
        callbacks=probe,
        generator_optimizer=optim.SGD(gan.generator.parameters(), lr=0.01),
        critic_optimizer=optim.SGD(gan.critic.parameters(), lr=0.01),
        generator_loss=xnn.WassersteinLossGenerator(),
        critic_loss=xnn.WassersteinLossCritic(),
        critic_iterations=2,
        skip_generator=Skip(),
        gpu=False,
    )
    assert len(history.batch_loss_critic) == 2 and len(history.batch_loss_generator) == 1
    assert seen == ([2] if probe else [])  # both optimizers are Lightning's on the Trainer


def test_wgan_history_saves_loads_and_plots_the_per_batch_values(tmp_path: Any) -> None:
    *_, history = wgan_pair(penalty=False, noise=fixed_noise, epochs=2)
    history.save(tmp_path / "history.json")
    loaded = xnn.History.load(tmp_path / "history.json")
    assert loaded == history and len(loaded.batch_em_distance) == 4  # 2 epochs of 2
    history.plot()  # the per-epoch values and micro_train_loss
    with pytest.raises(ValueError, match=r"plt\.plot\(history\['batch_em_distance'\]\)"):
        history.plot(["batch_em_distance"])
    assert "batch_em_distance" not in history._repr_html_()


def test_wgan_engine_refusals() -> None:
    gan = GAN()
    engine = xnn.WGANEngine(gan)
    loader = xnn.ZipDataLoader(fixed_noise(xnn), fixed_noise(xnn), 3, 2)
    common = {
        "generator_optimizer": optim.SGD(gan.generator.parameters(), lr=0.1),
        "critic_optimizer": optim.SGD(gan.critic.parameters(), lr=0.1),
        "generator_loss": xnn.WassersteinLossGenerator(),
        "critic_loss": xnn.WassersteinLossCritic(),
        "gpu": False,
    }
    with pytest.raises(TypeError, match="Expected no val_data or metrics for WGANEngine"):
        engine.train(loader, val_data=loader, **common)
    with pytest.raises(TypeError, match=r"Expected critic_optimizer to be a torch\.optim"):
        engine.train(loader, **{**common, "critic_optimizer": None})
    with pytest.raises(ValueError, match=r"Expected clip_weights to be None or a pair"):
        engine.train(loader, clip_weights=(1, -1), **common)
    with pytest.raises(ValueError, match=r"Expected WGANEngine batches \(noise, real\)"):
        engine.train(loader, critic_iterations=3, epochs=1, **common)
    with pytest.raises(TypeError, match=r"to have a `generator` submodule"):
        xnn.WGANEngine(nn.Module()).train(loader, **common)


def test_wgan_gradient_clipping_applies_to_both_optimizers(pyblaze_runner: str) -> None:
    if pyblaze_runner != "trainer":
        pytest.skip("trainer_kwargs run on the Trainer whatever the runner: tested once")
    moved = []
    for clip in (None, 1e-9):
        torch.manual_seed(0)
        gan = GAN()
        before = [p.detach().clone() for p in gan.parameters()]
        xnn.WGANEngine(gan, expects_data_target=True).train(
            xnn.ZipDataLoader(
                fixed_noise(xnn), DataLoader(REAL, batch_size=16, drop_last=True), 3, 2
            ),
            epochs=1,
            generator_optimizer=optim.SGD(gan.generator.parameters(), lr=0.1),
            critic_optimizer=optim.SGD(gan.critic.parameters(), lr=0.1),
            generator_loss=xnn.WassersteinLossGenerator(),
            critic_loss=xnn.WassersteinLossCritic(),
            critic_iterations=2,
            gpu=False,
            trainer_kwargs={} if clip is None else {"gradient_clip_val": clip},
        )
        moved.append(
            {
                name: max((p.detach() - b).abs().max().item() for p, b in zip(ps, bs, strict=True))
                for name, ps, bs in (
                    ("generator", list(gan.generator.parameters()), before[:4]),
                    ("critic", list(gan.critic.parameters()), before[4:]),
                )
            }
        )
    unclipped, clipped = moved
    assert min(unclipped.values()) > 1e-3 and max(clipped.values()) < 1e-8, moved
