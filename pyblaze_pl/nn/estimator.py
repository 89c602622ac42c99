"""The Estimator mixin: ``fit``, ``evaluate`` and ``predict`` on the model itself."""

from __future__ import annotations

from typing import Any

from pyblaze_pl._lightning import is_lightning_module
from pyblaze_pl.nn.engine.base import Engine
from pyblaze_pl.nn.engine.lightning import LightningEngine
from pyblaze_pl.nn.results import Evaluation, History


class Estimator:
    """Mixin for ``nn.Module`` that adds ``fit``, ``evaluate`` and ``predict``.

    They call ``train``, ``evaluate`` and ``predict`` of :attr:`engine`, an instance of the class
    attribute ``__engine__`` built once per model. A ``pytorch_lightning.LightningModule``
    without ``__engine__`` is trained by its own ``training_step`` (:class:`LightningEngine`).

    Example:
        >>> class Model(xnn.Estimator, nn.Module):
        ...     __engine__ = xnn.SupervisedEngine
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.linear = nn.Linear(4, 2)
        ...     def forward(self, x):
        ...         return self.linear(x)
        >>> model = Model()
        >>> history = model.fit(loader, optimizer=opt, loss=nn.MSELoss())  # doctest: +SKIP
    """

    @property
    def engine(self) -> Engine:
        """The model's engine, built on first use from ``__engine__``."""
        engine = self.__dict__.get("_pyblaze_engine")
        if engine is None:
            engine_class = getattr(type(self), "__engine__", _default_engine(self))
            if not (isinstance(engine_class, type) and issubclass(engine_class, Engine)):
                raise TypeError(
                    f"Expected {type(self).__name__}.__engine__ to be an Engine subclass such as "
                    f"xnn.SupervisedEngine. Received: {engine_class!r}."
                )
            engine = engine_class(self)
            self.__dict__["_pyblaze_engine"] = engine
        return engine

    def fit(self, *args: Any, **kwargs: Any) -> History:
        """Trains the model: ``self.engine.train(*args, **kwargs)``."""
        return self.engine.train(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Evaluation:
        """Evaluates the model: ``self.engine.evaluate(*args, **kwargs)``."""
        return self.engine.evaluate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Predicts with the model: ``self.engine.predict(*args, **kwargs)``."""
        return self.engine.predict(*args, **kwargs)


def _default_engine(model: object) -> type[Engine] | None:
    return LightningEngine if is_lightning_module(model) else None
