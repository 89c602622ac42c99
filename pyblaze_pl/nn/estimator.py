"""The Estimator mixin: ``fit``, ``evaluate`` and ``predict`` on the model itself."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from pyblaze_pl._lightning import is_lightning_module, reached_through
from pyblaze_pl.nn.engine.base import Engine
from pyblaze_pl.nn.engine.lightning import LightningEngine
from pyblaze_pl.nn.results import Evaluation, History


class _compilable:
    """``fit``, ``evaluate`` and ``predict`` as methods that notice a ``torch.compile`` wrapper.

    ``torch.compile(model)`` returns a wrapper whose ``__getattr__`` hands out the model's own
    methods, so ``torch.compile(model).fit(...)`` would run the model's ``fit`` with no trace of
    the wrapper. As a descriptor, this sees the wrapper's ``__getattr__`` asking for the method
    (one frame up) and runs the call with the wrapper noted, so that it trains compiled, as
    ``trainer.fit(torch.compile(module))`` does in Lightning.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        functools.update_wrapper(self, function)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        method = self.function.__get__(instance, owner)
        if instance is None:
            return method
        caller = sys._getframe(1)
        wrapper = caller.f_locals.get("self") if caller.f_code.co_name == "__getattr__" else None
        if type(wrapper).__name__ != "OptimizedModule" or wrapper._orig_mod is not instance:
            return method

        @functools.wraps(self.function)
        def through_wrapper(*args: Any, **kwargs: Any) -> Any:
            with reached_through(wrapper):
                return method(*args, **kwargs)

        return through_wrapper


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

    @_compilable
    def fit(self, *args: Any, **kwargs: Any) -> History:
        """Trains the model: ``self.engine.train(*args, **kwargs)``."""
        return self.engine.train(*args, **kwargs)

    @_compilable
    def evaluate(self, *args: Any, **kwargs: Any) -> Evaluation:
        """Evaluates the model: ``self.engine.evaluate(*args, **kwargs)``."""
        return self.engine.evaluate(*args, **kwargs)

    @_compilable
    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Predicts with the model: ``self.engine.predict(*args, **kwargs)``."""
        return self.engine.predict(*args, **kwargs)


def _default_engine(model: object) -> type[Engine] | None:
    return LightningEngine if is_lightning_module(model) else None
