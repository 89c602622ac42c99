"""Engines: how a model is trained, evaluated and used for predictions."""

from pyblaze_pl.nn.engine.autoencoder import AutoencoderEngine
from pyblaze_pl.nn.engine.base import Engine
from pyblaze_pl.nn.engine.lightning import LightningEngine
from pyblaze_pl.nn.engine.mle import MLEEngine
from pyblaze_pl.nn.engine.supervised import SupervisedEngine
from pyblaze_pl.nn.engine.wgan import WGANEngine

__all__ = [
    "AutoencoderEngine",
    "Engine",
    "LightningEngine",
    "MLEEngine",
    "SupervisedEngine",
    "WGANEngine",
]
