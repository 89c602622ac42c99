"""The PyBlaze training API on PyTorch Lightning: ``import pyblaze_pl.nn as xnn``.

Importing this package also installs ``random_split``, ``split`` and ``loader`` on
``torch.utils.data.Dataset``. Every public name of PyBlaze v1's ``pyblaze.nn`` resolves here;
the few PyBlaze names the library does not provide (``xnn.DataParallel``, ...) raise a
:class:`~pyblaze_pl.nn._removed.RemovedNameError` naming the replacement when used.
"""

from pyblaze_pl.nn import data as _data  # noqa: F401 - installs the Dataset helpers
from pyblaze_pl.nn._removed import NN_REMOVED, RemovedNameError, module_getattr
from pyblaze_pl.nn.callbacks import (
    BatchProgressLogger,
    CallbackException,
    EarlyStopping,
    EpochProgressLogger,
    LearningRateScheduler,
    ModelSaverCallback,
    NeptuneTracker,
    ParameterScheduler,
    PredictionCallback,
    PredictionProgressLogger,
    SacredTracker,
    TensorboardTracker,
    TrainingCallback,
    ValueTrainingCallback,
    WandbTracker,
)
from pyblaze_pl.nn.checkpoint import load_checkpoint_weights
from pyblaze_pl.nn.configurable import Config, Configurable
from pyblaze_pl.nn.data import TransformDataset, ZipDataLoader
from pyblaze_pl.nn.engine import (
    AutoencoderEngine,
    Engine,
    LightningEngine,
    MLEEngine,
    SupervisedEngine,
    WGANEngine,
)
from pyblaze_pl.nn.estimator import Estimator
from pyblaze_pl.nn.flows import (
    MADE,
    AffineCouplingTransform1d,
    AffineTransform,
    BatchNormTransform1d,
    FlipTransform1d,
    LeakyReLUTransform,
    MaskedAutoregressiveTransform1d,
    NormalizingFlow,
    PlanarTransform,
    PReLUTransform,
    RadialTransform,
)
from pyblaze_pl.nn.losses_generative import (
    GradientPenalty,
    TransformedGmmLoss,
    TransformedNormalLoss,
    VAELoss,
    WassersteinLossCritic,
    WassersteinLossGenerator,
)
from pyblaze_pl.nn.modules import (
    LinearResidual,
    StackedLSTM,
    StackedLSTMCell,
    View,
    WeightedBCELoss,
)
from pyblaze_pl.nn.noise import LabeledNoiseDataset, NoiseDataset
from pyblaze_pl.nn.results import Evaluation, History

BaseEngine = Engine  # PyBlaze v1's name of the engine base class

__getattr__ = module_getattr(__name__, "xnn", NN_REMOVED)

__all__ = [
    "MADE",
    "AffineCouplingTransform1d",
    "AffineTransform",
    "AutoencoderEngine",
    "BaseEngine",
    "BatchNormTransform1d",
    "BatchProgressLogger",
    "CallbackException",
    "Config",
    "Configurable",
    "EarlyStopping",
    "Engine",
    "EpochProgressLogger",
    "Estimator",
    "Evaluation",
    "FlipTransform1d",
    "GradientPenalty",
    "History",
    "LabeledNoiseDataset",
    "LeakyReLUTransform",
    "LearningRateScheduler",
    "LightningEngine",
    "LinearResidual",
    "MLEEngine",
    "MaskedAutoregressiveTransform1d",
    "ModelSaverCallback",
    "NeptuneTracker",
    "NoiseDataset",
    "NormalizingFlow",
    "PReLUTransform",
    "ParameterScheduler",
    "PlanarTransform",
    "PredictionCallback",
    "PredictionProgressLogger",
    "RadialTransform",
    "RemovedNameError",
    "SacredTracker",
    "StackedLSTM",
    "StackedLSTMCell",
    "SupervisedEngine",
    "TensorboardTracker",
    "TrainingCallback",
    "TransformDataset",
    "TransformedGmmLoss",
    "TransformedNormalLoss",
    "VAELoss",
    "ValueTrainingCallback",
    "View",
    "WGANEngine",
    "WandbTracker",
    "WassersteinLossCritic",
    "WassersteinLossGenerator",
    "WeightedBCELoss",
    "ZipDataLoader",
    "load_checkpoint_weights",
]
