"""The PyBlaze training API on PyTorch Lightning: ``import pyblaze_pl.nn as xnn``.

Importing this package also installs ``random_split`` and ``loader`` on
``torch.utils.data.Dataset``.
"""

from pyblaze_pl.nn import data as _data  # noqa: F401 - installs the Dataset helpers
from pyblaze_pl.nn.callbacks import (
    BatchProgressLogger,
    CallbackException,
    EarlyStopping,
    EpochProgressLogger,
    LearningRateScheduler,
    ModelSaverCallback,
    ParameterScheduler,
    PredictionCallback,
    PredictionProgressLogger,
    TrainingCallback,
    ValueTrainingCallback,
)
from pyblaze_pl.nn.configurable import Config, Configurable
from pyblaze_pl.nn.engine import Engine, LightningEngine, MLEEngine, SupervisedEngine
from pyblaze_pl.nn.estimator import Estimator
from pyblaze_pl.nn.results import Evaluation, History

__all__ = [
    "BatchProgressLogger",
    "CallbackException",
    "Config",
    "Configurable",
    "EarlyStopping",
    "Engine",
    "EpochProgressLogger",
    "Estimator",
    "Evaluation",
    "History",
    "LearningRateScheduler",
    "LightningEngine",
    "MLEEngine",
    "ModelSaverCallback",
    "ParameterScheduler",
    "PredictionCallback",
    "PredictionProgressLogger",
    "SupervisedEngine",
    "TrainingCallback",
    "ValueTrainingCallback",
]
