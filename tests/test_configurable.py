"""Config and Configurable: field checks, save/load round trips, safe and atomic files.

This module uses ``from __future__ import annotations``, so every Config below has string
annotations that Config resolves with ``typing.get_type_hints``.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
from typing import Any, Literal, Optional

import pytest
import torch
from io_faults import fill_disk
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyblaze_pl.nn as xnn


class ModelConfig(xnn.Config):
    hidden: int = 4
    dropout: float = 0.0
    activation: Literal["relu", "tanh"] = "relu"

    def is_valid(self) -> bool:
        return self.hidden > 0


class RequiredConfig(xnn.Config):
    inputs: int
    outputs: int
    name: str = "net"


class ChildConfig(ModelConfig):
    hidden = 8  # a new default for an inherited field
    layers: list[int] = [16, 16]  # noqa: RUF012 - Config copies it per instance
    kernel: tuple[int, int] = (3, 3)
    scales: dict[str, float] | None = None
    bias: Optional[bool] = None  # noqa: UP045 - the typing spelling is supported too


class AnyConfig(xnn.Config):
    anything: Any = None
    module: nn.Module | None = None


class Model(xnn.Configurable, nn.Module):
    __config__ = ModelConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fc = nn.Linear(3, self.hidden)
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class EvilPayload:
    """Unpickling it would create ``path``: the marker that pickled code ran."""

    def __init__(self, path: os.PathLike) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# Config: fields, defaults, types


def test_defaults_repr_equality_and_to_dict():
    config = ModelConfig()
    assert config.to_dict() == {"hidden": 4, "dropout": 0.0, "activation": "relu"}
    assert repr(config) == "ModelConfig(hidden=4, dropout=0.0, activation='relu')"
    assert config == ModelConfig(hidden=4) != ModelConfig(hidden=5)
    assert config != RequiredConfig(inputs=1, outputs=2)


def test_unknown_field_names_the_field_and_suggests():
    with pytest.raises(ValueError, match="Unknown field 'hiden' for ModelConfig") as info:
        ModelConfig(hiden=3)
    assert "Did you mean 'hidden'?" in str(info.value)
    assert "Valid fields: hidden, dropout, activation." in str(info.value)


def test_missing_required_fields_are_listed_with_types():
    with pytest.raises(ValueError) as info:
        RequiredConfig(inputs=3)
    assert str(info.value) == "Missing required field(s) for RequiredConfig: outputs (int)."
    with pytest.raises(ValueError, match=r"inputs \(int\), outputs \(int\)"):
        RequiredConfig()
    assert RequiredConfig(inputs=3, outputs=1).name == "net"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": "64"}, "Expected ModelConfig.hidden to be int. Received: '64' (str)."),
        (
            {"hidden": True},
            "Expected ModelConfig.hidden to be int. Received: True (bool). A bool is not "
            "accepted for an int field (PyBlaze v1 accepted it).",
        ),
        ({"hidden": 4.0}, "Expected ModelConfig.hidden to be int. Received: 4.0 (float)."),
        ({"dropout": "0.1"}, "Expected ModelConfig.dropout to be float. Received: '0.1' (str)."),
        ({"dropout": False}, "Expected ModelConfig.dropout to be float. Received: False (bool)."),
        (
            {"activation": "gelu"},
            "Expected ModelConfig.activation to be one of 'relu', 'tanh'. Received: 'gelu' (str).",
        ),
    ],
)
def test_type_errors_name_field_expected_and_received(kwargs, message):
    with pytest.raises(TypeError) as info:
        ModelConfig(**kwargs)
    assert str(info.value) == message


class TupleConfig(xnn.Config):
    rate: (int, float) = 1  # PyBlaze v1 style: a tuple of types, checked with isinstance
    size: (int, tuple) = (2, 2)


def test_tuple_of_types_annotations_as_pyblaze_v1():
    # v1 (pyblaze/nn/utils/config.py, Config.__init__) checks `isinstance(v, all_fields[k])`.
    # This module's annotations are strings: Config resolves the tuple anyway.
    assert TupleConfig().to_dict() == {"rate": 1, "size": (2, 2)}
    assert TupleConfig(rate=0.5, size=3).to_dict() == {"rate": 0.5, "size": 3}
    with pytest.raises(
        TypeError, match=r"^Expected TupleConfig\.rate to be int \| float\. Received: '1' \(str\)"
    ):
        TupleConfig(rate="1")
    namespace: dict[str, Any] = {"xnn": xnn}
    exec("class Real(xnn.Config):\n    rate: (int, float) = 1\n", namespace)  # not a string
    assert namespace["Real"](rate=2.5).rate == 2.5
    with pytest.raises(TypeError, match=r"to be int \| float\. Received: True \(bool\)\. A bool"):
        namespace["Real"](rate=True)


def test_params_is_pyblaze_v1s_dict_of_values():
    # v1: Config._params, the dict of every field's value (defaults included).
    config = ModelConfig(hidden=3)
    assert config._params == {"hidden": 3, "dropout": 0.0, "activation": "relu"}
    config._params["hidden"] = 5  # a copy: the config is unchanged
    assert config.hidden == 3


def test_int_is_accepted_for_float_and_stored_as_float():
    config = ModelConfig(dropout=1)
    assert config.dropout == 1.0
    assert isinstance(config.dropout, float)


def test_generic_optional_and_union_annotations():
    config = ChildConfig(layers=[1, 2], kernel=(5, 7), scales={"a": 1}, bias=True)
    assert config.layers == [1, 2] and config.kernel == (5, 7) and config.bias is True
    assert config.scales == {"a": 1.0} and isinstance(config.scales["a"], float)
    assert ChildConfig(scales=None).scales is None
    cases = [
        ({"layers": [1, "2"]}, "ChildConfig.layers to be list[int]. Received: [1, '2'] (list)."),
        ({"layers": (1, 2)}, "ChildConfig.layers to be list[int]. Received: (1, 2) (tuple)."),
        ({"kernel": (3,)}, "ChildConfig.kernel to be tuple[int, int]. Received: (3,) (tuple)."),
        ({"kernel": [3, 3]}, "ChildConfig.kernel to be tuple[int, int]. Received: [3, 3] (list)."),
        ({"scales": {"a": "x"}}, "ChildConfig.scales to be dict[str, float] | None."),
        ({"bias": 1}, "ChildConfig.bias to be bool | None. Received: 1 (int)."),
    ]
    for kwargs, message in cases:
        with pytest.raises(TypeError, match=re.escape("Expected " + message)):
            ChildConfig(**kwargs)


def test_class_and_any_annotations():
    linear = nn.Linear(1, 1)
    assert AnyConfig(anything=object, module=linear).module is linear
    with pytest.raises(
        TypeError, match=r"AnyConfig.module to be Module \| None. Received: 3 \(int\)"
    ):
        AnyConfig(module=3)


def test_annotations_that_are_real_types_work_too():
    plain = type("Plain", (xnn.Config,), {"__annotations__": {"size": int}, "size": 3})
    assert plain(size=5).size == 5
    with pytest.raises(TypeError, match=r"Expected Plain\.size to be int"):
        plain(size="5")


def test_unresolvable_string_annotation_is_a_clear_error():
    broken = type("Broken", (xnn.Config,), {"__annotations__": {"size": "NoSuchType"}})
    with pytest.raises(TypeError, match=r"Cannot resolve the annotations of Broken.*NoSuchType"):
        broken(size=1)


def test_inheritance_base_fields_first_and_new_defaults():
    config = ChildConfig()
    assert list(config.to_dict()) == [
        "hidden", "dropout", "activation", "layers", "kernel", "scales", "bias"
    ]  # fmt: skip
    assert config.hidden == 8 and ModelConfig().hidden == 4
    with pytest.raises(ValueError, match="is_valid"):  # inherited is_valid
        ChildConfig(hidden=0)


def test_is_valid_false_raises_value_error():
    with pytest.raises(ValueError) as info:
        ModelConfig(hidden=-1)
    assert "Invalid ModelConfig: is_valid() returned False" in str(info.value)
    assert "hidden=-1" in str(info.value)


def test_mutable_defaults_are_not_shared():
    first, second = ChildConfig(), ChildConfig()
    first.layers.append(3)
    assert second.layers == [16, 16] and ChildConfig.layers == [16, 16]


def test_assignment_checks_the_type():
    config = ModelConfig()
    config.dropout = 1
    assert config.dropout == 1.0 and isinstance(config.dropout, float)
    with pytest.raises(TypeError, match=r"Expected ModelConfig\.hidden to be int"):
        config.hidden = "5"
    assert config.hidden == 4


# Config: files


def test_config_save_load_roundtrip(tmp_path):
    config = ChildConfig(hidden=5, dropout=0.25, kernel=(1, 2), scales={"x": 0.5}, bias=False)
    written = config.save(tmp_path / "child")
    assert written == tmp_path / "child.json"
    assert json.loads(written.read_text())["kernel"] == [1, 2]
    loaded = ChildConfig.load(tmp_path / "child")
    assert loaded == config and loaded.kernel == (1, 2)  # the JSON list is a tuple again
    assert ChildConfig.load(tmp_path / "child.json") == config


def test_config_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        ModelConfig.load(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json.*not valid JSON"):
        ModelConfig.load(tmp_path / "bad")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"list\.json.*Received: a JSON list"):
        ModelConfig.load(tmp_path / "list")
    (tmp_path / "typed.json").write_text('{"hidden": "4"}')
    with pytest.raises(
        ValueError, match=r"Invalid ModelConfig in '.*typed\.json'.*hidden to be int"
    ):
        ModelConfig.load(tmp_path / "typed")


def test_config_that_is_not_json_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"AnyConfig\.module to be JSON-serializable"):
        AnyConfig(module=nn.Linear(1, 1)).save(tmp_path / "any")
    assert list(tmp_path.iterdir()) == []


def test_config_save_is_atomic(tmp_path, monkeypatch):
    path = ModelConfig(hidden=4).save(tmp_path / "config")
    before = path.read_text()
    fill_disk(monkeypatch)
    with pytest.raises(OSError, match=r"Could not write '.*config\.json': No space left"):
        ModelConfig(hidden=9).save(path)
    monkeypatch.undo()
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


# Configurable


def test_configurable_from_keywords_or_config():
    model = Model(hidden=5)
    assert model.config == ModelConfig(hidden=5)
    assert model.hidden == 5 and model.dropout == 0.0  # config fields as attributes
    assert model.fc.out_features == 5 and model.training  # nn.Module lookup is intact
    assert model.count.shape == ()
    config = ModelConfig(hidden=2)
    from_config = Model(config)
    assert from_config.config == config and from_config.config is not config  # its own copy
    with pytest.raises(
        AttributeError,
        match=r"^'Model' object has no attribute 'nothing', nor has its config ModelConfig "
        r"\(fields: hidden, dropout, activation\)\.$",
    ):
        _ = model.nothing
    with pytest.raises(AttributeError, match=r"'Model' object has no attribute '__nothing__'$"):
        _ = model.__nothing__


class DerivedConfig(xnn.Config):
    layers: int = 2
    width: int = 8

    @property
    def num_layers(self) -> int:
        return self.layers + 1

    def sizes(self) -> list[int]:
        return [self.width] * self.layers


class Derived(xnn.Configurable, nn.Module):
    __config__ = DerivedConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocks = nn.ModuleList(nn.Linear(self.width, self.width) for _ in range(self.layers))


def test_config_properties_and_methods_are_read_through_the_model():
    # PyBlaze v1 (pyblaze/nn/utils/config.py, Configurable.__getattr__) forwards every attribute
    # that the module does not have to the config: fields, properties and methods.
    model = Derived(layers=3)
    assert model.num_layers == 4 and model.sizes() == [8, 8, 8]
    assert model.is_valid() is True and model.to_dict() == {"layers": 3, "width": 8}
    assert len(model.blocks) == 3  # the module's own attributes come first


def test_num_parameters():
    model = Model(hidden=5)
    assert model.num_parameters == 3 * 5 + 5
    model.fc.bias.requires_grad_(False)
    assert model.num_trainable_parameters == 3 * 5


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((ModelConfig(), ModelConfig()), {}, TypeError, "Expected one ModelConfig or its fields"),
        ((ModelConfig(),), {"hidden": 3}, TypeError, "Expected one ModelConfig or its fields"),
        ((RequiredConfig(inputs=1, outputs=1),), {}, TypeError, "Expected a ModelConfig for Model"),
        ((), {"hidden": "3"}, TypeError, "Expected ModelConfig.hidden to be int"),
        ((), {"width": 3}, ValueError, "Unknown field 'width' for ModelConfig"),
    ],
)
def test_configurable_argument_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        Model(*args, **kwargs)


def test_configurable_needs_config_class_and_base_order():
    class NoConfig(xnn.Configurable, nn.Module):
        pass

    with pytest.raises(TypeError, match=r"Expected NoConfig.__config__ to be a Config subclass"):
        NoConfig()
    with pytest.raises(TypeError, match=r"Expected Configurable before nn\.Module"):

        class WrongOrder(nn.Module, xnn.Configurable):
            __config__ = ModelConfig


def test_model_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = Model(hidden=6, dropout=0.5, activation="tanh")
    model.count.fill_(7)
    model.save(tmp_path / "runs" / "model")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["model.json", "model.pt"]
    loaded = Model.load(tmp_path / "runs" / "model")
    assert isinstance(loaded, Model) and loaded.config == model.config
    for (name, expected), (other, actual) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert name == other and torch.equal(expected, actual)
    assert loaded.count.item() == 7
    assert Model.load(tmp_path / "runs" / "model.pt").config == model.config  # suffix ignored


def test_saved_weights_are_a_plain_cpu_state_dict(tmp_path):
    model = Model()
    model.save(tmp_path / "m")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(state) == {"fc.weight", "fc.bias", "count"}
    assert all(t.device.type == "cpu" for t in state.values())
    assert json.loads((tmp_path / "m.json").read_text()) == model.config.to_dict()


def test_model_save_is_atomic(tmp_path, monkeypatch):
    model = Model()
    model.save(tmp_path / "m")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.fc.weight.add_(1)

    def half_then_fail(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "m")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pt"]  # no temp file left
    old = Model.load(tmp_path / "m")
    assert all(torch.equal(before[k], v) for k, v in old.state_dict().items())


def _write_payload(path, marker, legacy: bool) -> None:
    if legacy:
        path.write_bytes(pickle.dumps({"fc.weight": EvilPayload(marker)}))
    else:
        torch.save({"fc.weight": EvilPayload(marker)}, path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_malicious_weights_are_refused_without_running_code(tmp_path, legacy):
    # the payload is real: an unsafe load runs it
    probe_marker = tmp_path / "probe-ran"
    _write_payload(tmp_path / "probe.pt", probe_marker, legacy)
    probe = tmp_path / "probe.pt"
    pickle.loads(probe.read_bytes()) if legacy else torch.load(probe, weights_only=False)
    assert probe_marker.exists()

    marker = tmp_path / "pwned"
    ModelConfig().save(tmp_path / "evil")
    _write_payload(tmp_path / "evil.pt", marker, legacy)
    with pytest.raises(
        ValueError, match=r"evil\.pt', which holds a pickle .*could run code"
    ) as info:
        Model.load(tmp_path / "evil")
    assert "Nothing in it was run" in str(info.value)
    assert "weights_only=False" not in str(info.value)  # never suggests unsafe loading
    assert not marker.exists()


def test_config_is_validated_before_weights_are_read(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    (tmp_path / "m.json").write_text('{"hidden": "many"}')
    _write_payload(tmp_path / "m.pt", marker, legacy=False)
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(ValueError, match=r"Invalid ModelConfig in '.*m\.json'.*hidden to be int"):
        Model.load(tmp_path / "m")
    assert loads == [] and not marker.exists()


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"a\.json"):
        Model.load(tmp_path / "a")
    ModelConfig().save(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match=r"b\.pt"):
        Model.load(tmp_path / "b")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "an empty file (0 bytes)"),
        (b"\x00\x01 not a torch file" * 10, "of no known format"),
        (None, "a truncated zip archive"),
    ],
)
def test_corrupt_weights_name_the_file(tmp_path, content, reason):
    Model().save(tmp_path / "m")
    weights = tmp_path / "m.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if content is None else content)
    with pytest.raises(ValueError, match=r"m\.pt") as info:
        Model.load(tmp_path / "m")
    assert reason in str(info.value)


def test_weights_that_do_not_fit_the_config(tmp_path):
    torch.save(Model(hidden=4).state_dict(), tmp_path / "m.pt")  # records no config
    ModelConfig(hidden=5).save(tmp_path / "m")
    with pytest.raises(
        ValueError, match=r"(?s)weights in '.*m\.pt' to fit the Model.*size mismatch"
    ):
        Model.load(tmp_path / "m")
    torch.save([1, 2], tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"m\.pt', which holds a list"):
        Model.load(tmp_path / "m")


def _old_and_new(tmp_path):
    torch.manual_seed(0)
    old = Model(hidden=4)
    old.save(tmp_path / "m")
    return old, Model(hidden=8, dropout=0.5)


def _assert_is(model, expected):
    assert model.config == expected.config
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.state_dict().items())


def test_a_full_disk_during_model_save_keeps_the_old_pair(tmp_path, monkeypatch):
    # The weights file is larger than the config: on a full disk the config fits, the weights
    # do not. The new config must not end up next to the old weights.
    old, new = _old_and_new(tmp_path)
    fill_disk(monkeypatch, names=["m.pt"])
    with pytest.raises(OSError, match=r"Could not write '.*m\.pt': No space left on device"):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pt"]
    _assert_is(Model.load(tmp_path / "m"), old)


def test_a_failing_weights_write_keeps_the_old_pair(tmp_path, monkeypatch):
    old, new = _old_and_new(tmp_path)

    def no_space(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError, match=r"Could not write '.*m\.pt': No space left on device"):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.pt"]
    _assert_is(Model.load(tmp_path / "m"), old)


def test_a_save_killed_between_the_two_files_is_reported_on_load(tmp_path, monkeypatch):
    _, new = _old_and_new(tmp_path)
    replace = os.replace
    calls = []

    def die_after_the_first_file(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands for a kill: no cleanup code runs after it
        replace(src, dst)

    monkeypatch.setattr(os, "replace", die_after_the_first_file)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    with pytest.raises(ValueError) as info:
        Model.load(tmp_path / "m")
    message = str(info.value)
    assert "to be saved together. Received a mixed pair:" in message
    assert "dropout=0.5 in 'm.pt' but 0.0 in 'm.json'" in message
    assert "hidden=8 in 'm.pt' but 4 in 'm.json'" in message
    assert "save the model again" in message


def test_a_mixed_pair_that_fits_loads_with_a_warning(tmp_path):
    model = Model(hidden=4, dropout=0.5)
    model.save(tmp_path / "m")
    ModelConfig(hidden=4, dropout=0.25).save(tmp_path / "m")  # e.g. edited by hand
    with pytest.warns(UserWarning, match=r"dropout=0\.5 in 'm\.pt' but 0\.25 in 'm\.json'"):
        loaded = Model.load(tmp_path / "m")
    assert loaded.dropout == 0.25
    # the config rides in the root entry of PyTorch's _metadata; the model's own is unchanged
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    own = model.state_dict()._metadata
    assert state._metadata[""] == {**own[""], "pyblaze_pl.config": model.config._json()}
    assert own[""].keys() == {"version"} and state._metadata["fc"] == own["fc"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_files_respect_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        Model().save(tmp_path / "m")
    finally:
        os.umask(previous)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {
        "m.json": 0o644,
        "m.pt": 0o644,
    }


# Configurable with Estimator


class EstimatorFirst(xnn.Estimator, xnn.Configurable, nn.Module):
    __config__ = ModelConfig
    __engine__ = xnn.SupervisedEngine

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fc = nn.Linear(3, self.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class ConfigurableFirst(xnn.Configurable, xnn.Estimator, nn.Module):
    __config__ = ModelConfig
    __engine__ = xnn.SupervisedEngine

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fc = nn.Linear(3, self.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.mark.parametrize("model_class", [EstimatorFirst, ConfigurableFirst])
def test_configurable_estimator_fit_save_load(tmp_path, model_class):
    torch.manual_seed(0)
    model = model_class(hidden=2)
    data = TensorDataset(torch.randn(12, 3), torch.randn(12, 2))
    loader = DataLoader(data, batch_size=4)
    history = model.fit(
        loader,
        epochs=2,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss=nn.MSELoss(),
        gpu=False,
    )
    assert len(history) == 2 and model.hidden == 2
    model.save(tmp_path / "model")
    loaded = model_class.load(tmp_path / "model")
    x = torch.randn(5, 3)
    assert torch.equal(
        loaded.predict(DataLoader(TensorDataset(x), batch_size=5), gpu=False), model(x).detach()
    )
