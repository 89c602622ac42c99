"""Every public name of PyBlaze's ``pyblaze.nn`` and ``pyblaze.nn.functional`` resolves in
pyblaze_pl: to a working object, or to a migration error that names the replacement.

The name lists are copied from the PyBlaze sources, so a missing name fails here:

- v1: GitHub borchero/pyblaze at commit 1a8f672, the ``__init__.py`` files of ``pyblaze/nn``
  (``from .callbacks/.data/.engine/.modules/.utils import *``) and ``pyblaze/nn/functional``.
- 2.3.2 (PyPI): the same files, which docs/migration.md lists name by name.

Submodule names that the star imports also exported (``pyblaze.nn.base``, ``.noise``, ...) are
not listed: they are import paths, not API.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X
from pyblaze_pl.nn._removed import NN_REMOVED, RemovedNameError

# pyblaze/nn/callbacks/__init__.py, data/__init__.py, engine/__init__.py, modules/__init__.py,
# utils/__init__.py at 1a8f672.
V1_NN = [
    # callbacks
    "TrainingCallback",
    "PredictionCallback",
    "CallbackException",
    "EarlyStopping",
    "EpochProgressLogger",
    "BatchProgressLogger",
    "PredictionProgressLogger",
    "SynchronizationCallback",
    "ModelSharingCallback",
    "ModelSaverCallback",
    "LearningRateScheduler",
    "ParameterScheduler",
    "NeptuneTracker",
    # data
    "NoiseDataset",
    # engine
    "BaseEngine",
    "SupervisedEngine",
    "History",
    "Evaluation",
    # modules
    "WeightedBCELoss",
    "StackedLSTM",
    "StackedLSTMCell",
    # utils
    "Config",
    "Configurable",
    "Estimator",
    "DataParallel",
]
# pyblaze/nn/functional/__init__.py at 1a8f672.
V1_FUNCTIONAL = [
    "gumbel_softmax",
    "accuracy",
    "precision",
    "average_precision",
    "recall",
    "roc_auc_score",
    "generate_noise",
]
# PyBlaze 2.3.2: pyblaze/nn/{callbacks,data,engine,modules}/__init__.py and `from .utils import
# Estimator`.
V2_NN = [
    "TrainingCallback",
    "PredictionCallback",
    "CallbackException",
    "ValueTrainingCallback",
    "EarlyStopping",
    "EpochProgressLogger",
    "BatchProgressLogger",
    "PredictionProgressLogger",
    "ModelSaverCallback",
    "LearningRateScheduler",
    "ParameterScheduler",
    "NeptuneTracker",
    "SacredTracker",
    "TensorboardTracker",
    "WandbTracker",
    "NoiseDataset",
    "LabeledNoiseDataset",
    "ZipDataLoader",
    "TransformDataset",
    "AutoencoderEngine",
    "Engine",
    "MLEEngine",
    "WGANEngine",
    "TransformedNormalLoss",
    "TransformedGmmLoss",
    "GradientPenalty",
    "StackedLSTM",
    "StackedLSTMCell",
    "MADE",
    "NormalizingFlow",
    "LinearResidual",
    "AffineTransform",
    "PlanarTransform",
    "RadialTransform",
    "AffineCouplingTransform1d",
    "MaskedAutoregressiveTransform1d",
    "BatchNormTransform1d",
    "LeakyReLUTransform",
    "PReLUTransform",
    "FlipTransform1d",
    "VAELoss",
    "View",
    "WassersteinLossGenerator",
    "WassersteinLossCritic",
    "Estimator",
]
# PyBlaze 2.3.2: pyblaze/nn/functional/__init__.py.
V2_FUNCTIONAL = [
    "log_prob_standard_normal",
    "log_prob_standard_gmm",
    "gumbel_softmax",
    "softround",
    "accuracy",
    "precision",
    "average_precision",
    "recall",
    "roc_auc_score",
    "pr_auc_score",
    "f1_score",
]

# The names that raise the migration error, and a piece of the replacement each names.
REMOVED = {
    "DataParallel": "gpu=[0, 1, ...]",
    "SynchronizationCallback": "gpu=[0, 1, ...]",
    "ModelSharingCallback": "gpu=[0, 1, ...]",
}

MESSAGE = re.compile(
    r"xnn\.(?P<name>\w+) \(PyBlaze (v1|v2)\) was removed: (?P<replacement>.{30,})\. "
    r"See docs/migration\.md\."
)


def _all_nn_names() -> list[str]:
    return sorted(set(V1_NN) | set(V2_NN))


def _all_functional_names() -> list[str]:
    return sorted(set(V1_FUNCTIONAL) | set(V2_FUNCTIONAL))


def test_removed_table_is_the_one_tested() -> None:
    # Removing or adding a migration error is a deliberate change of this list.
    assert set(NN_REMOVED) == set(REMOVED)
    assert set(REMOVED) <= set(_all_nn_names())


@pytest.mark.parametrize("name", _all_nn_names())
def test_nn_name_resolves_or_names_its_replacement(name: str) -> None:
    if name in REMOVED:
        with pytest.raises(RemovedNameError) as info:
            getattr(xnn, name)
        match = MESSAGE.fullmatch(str(info.value))
        assert match is not None, str(info.value)
        assert match["name"] == name
        assert REMOVED[name] in match["replacement"]
        assert info.value.name == name and info.value.obj is xnn
    else:
        value = getattr(xnn, name)
        assert callable(value), f"xnn.{name} is {value!r}"
        assert name in xnn.__all__


@pytest.mark.parametrize("name", _all_functional_names())
def test_functional_name_resolves(name: str) -> None:
    assert callable(getattr(X, name))
    assert name in X.__all__


def test_removed_names_keep_hasattr_and_getattr_default_working() -> None:
    for name in REMOVED:
        assert not hasattr(xnn, name)
        assert getattr(xnn, name, None) is None


def test_removed_error_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"pass gpu=\[0, 1, ...\] to fit/train"):
        xnn.DataParallel(None)


def test_from_import_of_a_removed_name_keeps_the_message() -> None:
    # Python would replace an AttributeError's message by "cannot import name ...".
    with pytest.raises(ImportError, match=r"xnn\.DataParallel \(PyBlaze v1\) was removed: pass"):
        exec("from pyblaze_pl.nn import DataParallel", {})
    with pytest.raises(ImportError, match=r"xnn\.ModelSharingCallback \(PyBlaze v1\) was removed"):
        exec("def f():\n    from pyblaze_pl.nn import ModelSharingCallback\nf()", {})


def test_unknown_names_raise_the_plain_attribute_error() -> None:
    message = r"module 'pyblaze_pl\.nn' has no attribute 'Nope'"
    with pytest.raises(AttributeError, match=message) as e:
        xnn.Nope  # noqa: B018
    assert not isinstance(e.value, RemovedNameError)
    with pytest.raises(ImportError, match="cannot import name 'Nope'"):
        exec("from pyblaze_pl.nn import Nope", {})


def test_star_import_gives_every_implemented_name() -> None:
    namespace: dict[str, object] = {}
    exec("from pyblaze_pl.nn import *", namespace)
    assert {n for n in _all_nn_names() if n not in REMOVED} <= set(namespace)
    assert not set(REMOVED) & set(namespace)
    exec("from pyblaze_pl.nn.functional import *", namespace)
    assert set(_all_functional_names()) <= set(namespace)


def test_base_engine_is_the_engine() -> None:
    assert xnn.BaseEngine is xnn.Engine


def _status_table() -> dict[str, tuple[str, str]]:
    """name -> (status, row) from docs/migration.md's "v1 names and their status" table."""
    text = (Path(__file__).parents[1] / "docs" / "migration.md").read_text(encoding="utf-8")
    section = text.split("### v1 names and their status", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[2], line)
    return rows


def test_migration_guide_lists_every_v1_name_with_its_status() -> None:
    rows = _status_table()
    assert set(rows) == set(V1_NN) | set(V1_FUNCTIONAL)
    for name, (status, row) in rows.items():
        expected = "removed" if name in REMOVED else "implemented"
        assert status == expected, row
