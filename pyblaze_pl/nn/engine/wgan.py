"""PyBlaze 2.x's ``WGANEngine``: a generator and a critic, each with its own optimizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pyblaze_pl.nn.callbacks.compat import read_values
from pyblaze_pl.nn.engine._batches import check_positive_int
from pyblaze_pl.nn.engine.base import Engine
from pyblaze_pl.nn.engine.mle import _with_kwarg_callbacks
from pyblaze_pl.nn.results import Evaluation, History

# PyBlaze's names of the values of one batch (and, without `batch_`, their epoch means)
VALUE_NAMES = ("loss_generator", "loss_critic", "em_distance")


def _call(module: Callable[..., Any], x: Any, kwargs: Mapping[str, Any]) -> Any:
    if isinstance(x, (list, tuple)):
        return module(*x, **kwargs)
    return module(x, **kwargs)


def _split_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments for the generator and the critic: ``generator_x`` and ``critic_x`` go to
    one of them (without the prefix), any other to both (PyBlaze 2.x)."""
    generator = {
        k.removeprefix("generator_"): v for k, v in kwargs.items() if not k.startswith("critic_")
    }
    critic = {
        k.removeprefix("critic_"): v for k, v in kwargs.items() if not k.startswith("generator_")
    }
    return generator, critic


def _check_module(model: nn.Module, name: str) -> None:
    if not isinstance(getattr(model, name, None), nn.Module):
        raise TypeError(
            f"Expected the model ({type(model).__name__}) to have a `{name}` submodule: "
            f"WGANEngine trains `model.generator` and `model.critic`. Received: a model without "
            f"a `{name}` module."
        )


class WGANEngine(Engine):
    """Trains a Wasserstein GAN (PyBlaze 2.x): per batch, one generator step, then
    ``critic_iterations`` critic steps.

    The model has ``generator`` and ``critic`` submodules. A batch is ``(noise, real)``: a list
    of ``critic_iterations + 1`` noise batches and a list of ``critic_iterations`` real batches,
    as ``xnn.ZipDataLoader(noise_loader, real_loader, critic_iterations + 1,
    critic_iterations)`` yields them. ``predict`` runs the generator on noise batches (take the
    first ``k`` of an endless noise loader with ``iterations=k``).

    Per batch the engine records PyBlaze's values ``loss_generator`` (unless the generator is
    skipped), ``loss_critic`` and ``em_distance`` (both averaged over the critic iterations):
    ``history.batch_em_distance`` holds every batch's value, ``history.em_distance`` the epoch
    means (likewise ``batch_loss_critic``, ``loss_critic``, ...). ``micro_train_loss`` and
    ``train_loss`` hold the critic's loss, the value the run records for each batch.

    Optimizer steps go through :meth:`Engine.optimizer_step`: on Lightning's Trainer both
    optimizers are registered with Lightning (manual optimization), so precision, gradient
    clipping and DDP apply to both.

    Args:
        model: A module with ``generator`` and ``critic`` submodules.
        expects_data_target: Whether real batches are ``(x, y)`` pairs (``y`` is dropped).

    Example:
        >>> engine = xnn.WGANEngine(gan)  # doctest: +SKIP
        >>> loader = xnn.ZipDataLoader(noise_loader, real_loader, 4, 3)  # doctest: +SKIP
        >>> history = engine.train(
        ...     loader, epochs=10,
        ...     generator_optimizer=optim.Adam(gan.generator.parameters()),
        ...     critic_optimizer=optim.Adam(gan.critic.parameters()),
        ...     generator_loss=xnn.WassersteinLossGenerator(),
        ...     critic_loss=xnn.WassersteinLossCritic(xnn.GradientPenalty(gan.critic)),
        ...     critic_iterations=3)  # doctest: +SKIP
        >>> history.batch_em_distance  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, expects_data_target: bool = False) -> None:
        super().__init__(model)
        if not isinstance(expects_data_target, bool):
            raise TypeError(
                f"Expected expects_data_target to be a bool. Received: {expects_data_target!r}."
            )
        self.expects_data_target = expects_data_target
        self._batch_values: dict[str, list[torch.Tensor]] = {}

    def train(
        self,
        train_data: Iterable,
        val_data: Iterable | None = None,
        epochs: int = 20,
        callbacks: Sequence[object] | None = None,
        metrics: Mapping[str, object] | None = None,
        gpu: object = "auto",
        *,
        generator_optimizer: torch.optim.Optimizer | None = None,
        critic_optimizer: torch.optim.Optimizer | None = None,
        generator_loss: Callable[..., torch.Tensor] | None = None,
        critic_loss: Callable[..., Any] | None = None,
        critic_iterations: int = 3,
        skip_generator: bool | Any = False,
        clip_weights: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> History:
        """Trains the GAN; see :meth:`Engine.train` for the common arguments.

        Args:
            generator_optimizer: The optimizer of ``model.generator``'s parameters.
            critic_optimizer: The optimizer of ``model.critic``'s parameters.
            generator_loss: ``critic(fake) -> loss``, e.g. ``xnn.WassersteinLossGenerator()``.
            critic_loss: ``(critic(fake), critic(real), fake, real) -> (loss, em_distance)``,
                e.g. ``xnn.WassersteinLossCritic(xnn.GradientPenalty(model.critic))``.
            critic_iterations: Critic steps per batch.
            skip_generator: Skip the generator step (a bool, or a ``ValueTrainingCallback``
                read on every batch).
            clip_weights: ``(low, high)``: clamp the critic's parameters after each of its steps.
            **kwargs: Passed to the generator and the critic; ``generator_``/``critic_``
                prefixed ones to one of them only.
        """
        _check_module(self.model, "generator")
        _check_module(self.model, "critic")
        for name, value in (("generator", generator_optimizer), ("critic", critic_optimizer)):
            if not isinstance(value, torch.optim.Optimizer):
                raise TypeError(
                    f"Expected {name}_optimizer to be a torch.optim.Optimizer, e.g. "
                    f"optim.Adam(model.{name}.parameters()). Received: {type(value).__name__}."
                )
        for name, value in (("generator_loss", generator_loss), ("critic_loss", critic_loss)):
            if not callable(value) or isinstance(value, type):
                raise TypeError(
                    f"Expected {name} to be a loss function or module instance, e.g. "
                    f"xnn.WassersteinLoss{name.split('_')[0].title()}(). Received: {value!r}."
                )
        check_positive_int("critic_iterations", critic_iterations)
        if clip_weights is not None and not (
            isinstance(clip_weights, (tuple, list))
            and len(clip_weights) == 2
            and clip_weights[0] <= clip_weights[1]
        ):
            raise ValueError(
                f"Expected clip_weights to be None or a pair (low, high) with low <= high. "
                f"Received: {clip_weights!r}."
            )
        if (val_data is not None or metrics) and type(self).eval_batch is WGANEngine.eval_batch:
            given = "val_data" if val_data is not None else "metrics"
            raise TypeError(
                f"Expected no val_data or metrics for WGANEngine: a GAN has no general "
                f"validation (PyBlaze 2.x raised NotImplementedError). Received: {given}. "
                f"Subclass WGANEngine and define eval_batch to validate."
            )
        if callbacks is None or isinstance(callbacks, (list, tuple)):
            callbacks = _with_kwarg_callbacks(callbacks or [], {"s": skip_generator, **kwargs})
        self._batch_values = {}
        return super().train(
            train_data,
            val_data,
            epochs,
            callbacks,
            metrics,
            gpu,
            generator_optimizer=generator_optimizer,
            critic_optimizer=critic_optimizer,
            generator_loss=generator_loss,
            critic_loss=critic_loss,
            critic_iterations=critic_iterations,
            skip_generator=skip_generator,
            clip_weights=clip_weights,
            **kwargs,
        )

    def evaluate(self, data: Iterable, *args: Any, **kwargs: Any) -> Evaluation:
        """Refused unless a subclass defines :meth:`eval_batch` (as in PyBlaze 2.x)."""
        if type(self).eval_batch is WGANEngine.eval_batch:
            raise TypeError(
                "Expected an engine with eval_batch for evaluate: a GAN has no general "
                "evaluation. Received: WGANEngine. Subclass it and define eval_batch."
            )
        return super().evaluate(data, *args, **kwargs)

    def predict(
        self,
        data: Iterable,
        callbacks: Sequence[object] | None = None,
        gpu: object = "auto",
        **kwargs: Any,
    ) -> Any:
        """Generates samples from the noise batches of ``data`` (its first ``iterations=k``
        batches if given, as :meth:`Engine.predict` takes them).

        Example:
            >>> noise = xnn.NoiseDataset(dist).loader(batch_size=64)  # doctest: +SKIP
            >>> engine.predict(noise, iterations=1)  # doctest: +SKIP
        """
        _check_module(self.model, "generator")
        return super().predict(data, callbacks, gpu, **kwargs)

    # batch processing
    def train_batch(
        self,
        data: Any,
        generator_optimizer: torch.optim.Optimizer,
        critic_optimizer: torch.optim.Optimizer,
        generator_loss: Callable[..., torch.Tensor],
        critic_loss: Callable[..., Any],
        critic_iterations: int = 3,
        skip_generator: Any = False,
        clip_weights: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        generator, critic = self.model.generator, self.model.critic
        values = read_values({"skip": skip_generator, **kwargs})
        skip = values.pop("skip")
        generator_kwargs, critic_kwargs = _split_kwargs(values)
        noise, real = self._check_batch(data, critic_iterations)

        if not skip:
            generator_optimizer.zero_grad()
            fake = _call(generator, noise[0], generator_kwargs)
            loss = generator_loss(_call(critic, fake, critic_kwargs))
            self.backward(loss)
            self.optimizer_step(generator_optimizer)
            self._record("loss_generator", loss.detach())

        losses, distances = [], []
        for i in range(critic_iterations):
            critic_optimizer.zero_grad()  # also the critic's gradients of the generator's loss
            real_batch = real[i][0] if self.expects_data_target else real[i]
            with torch.no_grad():
                fake = _call(generator, noise[i + 1], generator_kwargs)
            out_fake = _call(critic, fake, critic_kwargs)
            out_real = _call(critic, real_batch, critic_kwargs)
            loss, em_distance = critic_loss(out_fake, out_real, fake, real_batch)
            self.backward(loss)
            self.optimizer_step(critic_optimizer)
            if clip_weights is not None:
                with torch.no_grad():
                    for parameter in critic.parameters():
                        parameter.clamp_(*clip_weights)
            losses.append(loss.detach())
            distances.append(torch.as_tensor(em_distance).detach())
        loss_critic = torch.stack(losses).mean()
        self._record("loss_critic", loss_critic)
        self._record("em_distance", torch.stack(distances).mean())
        return loss_critic

    def eval_batch(self, data: Any, **kwargs: Any) -> tuple[Any, Any]:
        raise NotImplementedError("WGANEngine has no evaluation: subclass it to define one.")

    def predict_batch(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, (list, tuple)) and len(data) == 1:
            data = data[0]
        return _call(self.model.generator, data, kwargs)

    # PyBlaze's per-batch values
    def epoch_values(self) -> dict[str, list[float]]:
        """This epoch's values, moved to the host in one transfer."""
        values, self._batch_values = self._batch_values, {}
        if not values:
            return {}
        names = list(values)
        flat = torch.cat([torch.stack(values[n]).double().reshape(-1) for n in names]).tolist()
        epoch, start = {}, 0
        for name in names:
            epoch[name] = flat[start : start + len(values[name])]
            start += len(values[name])
        return epoch

    def _record(self, name: str, value: torch.Tensor) -> None:
        self._batch_values.setdefault(name, []).append(value)

    def _check_batch(self, data: Any, critic_iterations: int) -> tuple[Any, Any]:
        ok = isinstance(data, (list, tuple)) and len(data) == 2
        noise, real = data if ok else (None, None)
        if not (
            ok
            and isinstance(noise, (list, tuple))
            and isinstance(real, (list, tuple))
            and len(noise) > critic_iterations
            and len(real) >= critic_iterations
        ):
            raise ValueError(
                f"Expected WGANEngine batches (noise, real): lists of {critic_iterations + 1} "
                f"noise and {critic_iterations} real batches, as xnn.ZipDataLoader(noise_loader, "
                f"real_loader, {critic_iterations + 1}, {critic_iterations}) yields them. "
                f"Received: {_shape(data)}."
            )
        return noise, real


def _shape(data: Any) -> str:
    if isinstance(data, (list, tuple)):
        return f"a {type(data).__name__} of {len(data)} ({', '.join(_shape(d) for d in data[:3])})"
    if isinstance(data, torch.Tensor):
        return f"a tensor {tuple(data.shape)}"
    return type(data).__name__
