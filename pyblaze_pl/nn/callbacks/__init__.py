"""PyBlaze callbacks; Lightning callbacks can be passed alongside them."""

from pyblaze_pl.nn.callbacks.base import CallbackException, PredictionCallback, TrainingCallback
from pyblaze_pl.nn.callbacks.compat import ValueTrainingCallback
from pyblaze_pl.nn.callbacks.early_stopping import EarlyStopping
from pyblaze_pl.nn.callbacks.progress import (
    BatchProgressLogger,
    EpochProgressLogger,
    PredictionProgressLogger,
)
from pyblaze_pl.nn.callbacks.saving import ModelSaverCallback
from pyblaze_pl.nn.callbacks.schedule import LearningRateScheduler, ParameterScheduler
from pyblaze_pl.nn.callbacks.tracking import (
    NeptuneTracker,
    SacredTracker,
    TensorboardTracker,
    WandbTracker,
)

__all__ = [
    "BatchProgressLogger",
    "CallbackException",
    "EarlyStopping",
    "EpochProgressLogger",
    "LearningRateScheduler",
    "ModelSaverCallback",
    "NeptuneTracker",
    "ParameterScheduler",
    "PredictionCallback",
    "PredictionProgressLogger",
    "SacredTracker",
    "TensorboardTracker",
    "TrainingCallback",
    "ValueTrainingCallback",
    "WandbTracker",
]
