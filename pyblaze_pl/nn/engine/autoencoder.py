"""PyBlaze 2.x's ``AutoencoderEngine``: an :class:`MLEEngine` whose loss gets the inputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from pyblaze_pl.nn.engine.mle import MLEEngine


class AutoencoderEngine(MLEEngine):
    """Trains (variational) autoencoders: the loss receives the model's outputs and its inputs,
    ``loss(*outputs, x)`` (PyBlaze 2.x).

    A VAE whose ``forward(x)`` returns ``(x_pred, mu, logvar)`` trains with
    ``loss=xnn.VAELoss(nn.BCELoss(reduction='none'))``; with ``val_data`` that loss is also
    ``val_loss`` (computed once over the whole validation set, as in PyBlaze), and ``metrics``
    receive the same inputs.

    ``predict(data, reconstruct=True)`` runs the whole model on ``data`` (inputs, or ``(x, y)``
    pairs with ``expects_data_target=True``) and returns its outputs; ``predict(noise,
    reconstruct=False)`` (the default) runs ``model.decoder`` on latent codes, e.g.
    ``predict(xnn.NoiseDataset(dist).loader(batch_size=64), iterations=1)``.

    Args:
        model: The autoencoder; ``predict(reconstruct=False)`` needs a ``decoder`` submodule.
        expects_data_target: Whether batches are ``(x, y)`` pairs (``y`` is ignored).

    Example:
        >>> engine = xnn.AutoencoderEngine(vae, expects_data_target=True)  # doctest: +SKIP
        >>> engine.train(train_loader, val_data=val_loader, epochs=20, optimizer=opt,
        ...              loss=xnn.VAELoss(nn.BCELoss(reduction="none")))  # doctest: +SKIP
        >>> images = engine.predict(noise_loader, iterations=1)  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, expects_data_target: bool = False) -> None:
        super().__init__(
            model,
            expects_data_target=expects_data_target,
            uses_data_target=False,
            uses_data_input=True,
        )

    def predict(
        self,
        data: Iterable,
        callbacks: Sequence[object] | None = None,
        gpu: object = "auto",
        *,
        iterations: int | None = None,
        reconstruct: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Decodes latent codes (default) or, with ``reconstruct=True``, runs the whole model on
        inputs; ``iterations=k`` takes the first ``k`` batches of ``data``. Further keyword
        arguments go to the model's (or decoder's) ``forward``.

        Example:
            >>> engine.predict(test_loader, reconstruct=True)  # doctest: +SKIP
        """
        if not isinstance(reconstruct, bool):
            raise TypeError(
                f"Expected reconstruct to be a bool. Received: {reconstruct!r} "
                f"({type(reconstruct).__name__})."
            )
        if not reconstruct and not isinstance(
            getattr(self.model, "decoder", None), torch.nn.Module
        ):
            raise TypeError(
                f"Expected the model ({type(self.model).__name__}) to have a `decoder` submodule "
                f"for predict(reconstruct=False), which decodes latent codes. Received: a model "
                f"without one. Add `self.decoder`, or pass reconstruct=True to run the whole "
                f"model on inputs."
            )
        return super().predict(
            data, callbacks, gpu, iterations=iterations, reconstruct=reconstruct, **kwargs
        )

    def predict_batch(self, data: Any, reconstruct: bool = False, **kwargs: Any) -> Any:
        if reconstruct:
            return super().predict_batch(data, **kwargs)
        codes = tuple(data) if isinstance(data, (list, tuple)) else (data,)
        return self.model.decoder(*codes, **kwargs)
