"""Normalizing flows (PyBlaze 2.x): :class:`NormalizingFlow`, its transforms and :class:`MADE`.

Every transform maps ``z [N, D]`` to ``(y [N, D], log_det [N])``, the log-determinant of its
Jacobian at ``z``; a :class:`NormalizingFlow` chains them and sums the log-determinants. Train a
flow with ``xnn.MLEEngine(flow, expects_data_target=False)`` and
``loss=xnn.TransformedNormalLoss()``. Parameter and buffer names are PyBlaze 2.3.2's, so its
state dicts load.
"""

from pyblaze_pl.nn.flows.autoregressive import (
    MADE,
    AffineCouplingTransform1d,
    MaskedAutoregressiveTransform1d,
)
from pyblaze_pl.nn.flows.flow import NormalizingFlow
from pyblaze_pl.nn.flows.transforms import (
    AffineTransform,
    BatchNormTransform1d,
    FlipTransform1d,
    LeakyReLUTransform,
    PlanarTransform,
    PReLUTransform,
    RadialTransform,
)

__all__ = [
    "MADE",
    "AffineCouplingTransform1d",
    "AffineTransform",
    "BatchNormTransform1d",
    "FlipTransform1d",
    "LeakyReLUTransform",
    "MaskedAutoregressiveTransform1d",
    "NormalizingFlow",
    "PReLUTransform",
    "PlanarTransform",
    "RadialTransform",
]
