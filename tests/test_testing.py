"""pyblaze_pl.testing: assert_histories_close and assert_models_close, messages included."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from torch import nn

from pyblaze_pl.nn import History
from pyblaze_pl.testing import assert_histories_close, assert_models_close

NAN = math.nan


def make_history() -> History:
    return History(
        2.0,
        [
            {"micro_train_loss": [1.0, 0.5], "train_loss": 0.75, "val_loss": NAN},
            {"micro_train_loss": [0.4, 0.2], "train_loss": 0.3, "val_loss": 0.6},
        ],
    )


# --- assert_histories_close ---------------------------------------------------------------------


def test_equal_histories_pass_with_nan_equal_to_nan() -> None:
    history = make_history()
    assert_histories_close(history, copy.deepcopy(history), rtol=0, atol=0)
    assert_histories_close(history, history.to_dict(), rtol=0, atol=0)  # a plain mapping
    expected = {
        "micro_train_loss": [1.0, 0.5, 0.4, 0.2 + 1e-9],
        "train_loss": [0.75, 0.3],
        "val_loss": [NAN, 0.6],
    }
    assert_histories_close(history, expected)  # 1e-9 is within the default atol of 1e-8
    assert_histories_close(History(0, [{"val_loss": math.inf}]), {"val_loss": [math.inf]})


def test_history_message_names_key_epoch_batch_and_both_values() -> None:
    expected = {
        "micro_train_loss": [1.0, 0.5, 0.41, 0.2],
        "train_loss": [0.75, 0.3],
        "val_loss": [0.1, 0.6],
    }
    with pytest.raises(AssertionError) as info:
        assert_histories_close(make_history(), expected, rtol=1e-5, atol=1e-8)
    assert str(info.value) == (
        "Histories differ (rtol=1e-05, atol=1e-08; epochs and batches count from 0, batches "
        "over all epochs) in 2 of 8 values:\n"
        "  micro_train_loss, batch 2: actual=0.4, expected=0.41, |difference|=0.01 "
        "(allowed 4.11e-06)\n"
        "  val_loss, epoch 0: actual=nan, expected=0.1, |difference|=nan (allowed 1.01e-06)"
    )


def test_history_tolerance_is_relative_to_expected() -> None:
    history = History(0, [{"train_loss": 100.0}])
    assert_histories_close(history, {"train_loss": [100.0009]}, rtol=1e-5, atol=0)
    with pytest.raises(AssertionError, match=r"train_loss, epoch 0: actual=100\.0, expected=100"):
        assert_histories_close(history, {"train_loss": [100.0011]}, rtol=1e-5, atol=0)
    with pytest.raises(AssertionError, match=r"actual=inf, expected=-inf"):
        assert_histories_close(History(0, [{"x": math.inf}]), {"x": [-math.inf]})


def test_history_keys() -> None:
    history = make_history()
    with pytest.raises(
        AssertionError,
        match=re.escape(
            "Histories have different keys: only in actual: ['micro_train_loss', 'val_loss'], "
            "only in expected: ['val_accuracy']. Pass keys=[...] to compare some of them."
        ),
    ):
        assert_histories_close(history, {"train_loss": [0.75, 0.3], "val_accuracy": [0.5, 0.6]})
    # keys= compares only those
    assert_histories_close(history, {"train_loss": [0.75, 0.3]}, keys=["train_loss"])
    assert_histories_close(history, {"train_loss": [0.75, 0.3]}, keys="train_loss")
    with pytest.raises(
        AssertionError,
        match=re.escape(
            "History key 'val_loss' is missing in expected. Keys in expected: ['train_loss']."
        ),
    ):
        assert_histories_close(history, {"train_loss": [0.75, 0.3]}, keys=["val_loss"])


def test_history_lengths() -> None:
    with pytest.raises(
        AssertionError,
        match=re.escape("History key 'train_loss' has 2 values (epochs) in actual and 3 in"),
    ):
        assert_histories_close(make_history(), {"train_loss": [1, 2, 3]}, keys=["train_loss"])
    with pytest.raises(AssertionError, match=r"'micro_train_loss' has 4 values \(batches\)"):
        assert_histories_close(
            make_history(), {"micro_train_loss": [1.0]}, keys=["micro_train_loss"]
        )


def test_history_long_listing_is_cut() -> None:
    actual = History(0, [{"train_loss": float(i)} for i in range(15)])
    with pytest.raises(AssertionError) as info:
        assert_histories_close(actual, {"train_loss": [i + 1.0 for i in range(15)]})
    message = str(info.value)
    assert "in 15 of 15 values" in message
    assert "train_loss, epoch 9:" in message and "train_loss, epoch 10:" not in message
    assert message.endswith("  ... and 5 more")


def test_history_wrong_types() -> None:
    with pytest.raises(TypeError, match=r"Expected actual to be a pyblaze_pl History .* list"):
        assert_histories_close([1.0], make_history())
    with pytest.raises(TypeError, match=r"Expected expected\['train_loss'\] to be a list"):
        assert_histories_close(make_history(), {"train_loss": 0.5})


# --- assert_models_close ------------------------------------------------------------------------


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_equal_models_pass_for_modules_and_state_dicts() -> None:
    model = make_model()
    assert_models_close(model, copy.deepcopy(model), rtol=0, atol=0)
    assert_models_close(model, model.state_dict(), rtol=0, atol=0)
    state = {k: v.double() for k, v in model.state_dict().items()}  # other dtype, same values
    assert_models_close(state, model, rtol=0, atol=0)
    state["0.bias"][0] = NAN
    assert_models_close(state, copy.deepcopy(state), rtol=0, atol=0)  # NaN equals NaN


def test_model_message_names_parameter_index_and_both_values() -> None:
    model = make_model()
    expected = copy.deepcopy(model.state_dict())
    expected["0.weight"][1, 2] += 0.5
    expected["0.weight"][0, 0] += 0.25
    expected["1.running_var"][0] = NAN
    with pytest.raises(AssertionError) as info:
        assert_models_close(model, expected, rtol=0, atol=1e-6)
    weight = model.state_dict()["0.weight"]
    actual_value, expected_value = weight[1, 2].item(), expected["0.weight"][1, 2].item()
    assert str(info.value) == (
        "Models differ (rtol=0, atol=1e-06) in 2 of 7 parameters/buffers:\n"
        f"  '0.weight': 2 of 6 elements differ; largest at index (1, 2): "
        f"actual={actual_value!r}, expected={expected_value!r}, |difference|=0.5 "
        f"(allowed 1e-06)\n"
        "  '1.running_var': 1 of 2 elements differ; largest at index (0,): actual=1.0, "
        "expected=nan, |difference|=nan (allowed 0)"
    )


def test_model_names_and_shapes() -> None:
    model = make_model()
    state = dict(model.state_dict())
    del state["1.num_batches_tracked"]
    state["extra"] = torch.zeros(1)
    with pytest.raises(
        AssertionError,
        match=re.escape(
            "Models have different parameters/buffers: only in actual: ['1.num_batches_tracked'],"
            " only in expected: ['extra']."
        ),
    ):
        assert_models_close(model, state)
    state = dict(model.state_dict())
    state["0.weight"] = torch.zeros(3, 2)
    with pytest.raises(
        AssertionError,
        match=re.escape(
            "Model entry '0.weight' has shape (2, 3) in actual and (3, 2) in expected."
        ),
    ):
        assert_models_close(model, state)


def test_model_integer_buffers_and_scalars() -> None:
    model = make_model()
    state = copy.deepcopy(model.state_dict())
    state["1.num_batches_tracked"] += 1
    with pytest.raises(
        AssertionError,
        match=re.escape(
            "'1.num_batches_tracked': 1 of 1 elements differ; largest at index (): actual=0.0, "
            "expected=1.0"
        ),
    ):
        assert_models_close(model, state)


def test_model_wrong_types() -> None:
    with pytest.raises(TypeError, match=r"Expected expected to be an nn\.Module or a state dict"):
        assert_models_close(make_model(), [1.0])
