"""quiet(): Lightning's loggers and noise filters, restored exactly, also with threads."""

from __future__ import annotations

import logging
import threading
import warnings

import pytest

from pyblaze_pl._lightning.quiet import _LOGGERS, NOISE, quiet


def levels() -> list[int]:
    return [logging.getLogger(name).level for name in _LOGGERS]


def noise_filters() -> list[str]:
    return [f[1].pattern for f in warnings.filters if f[1] is not None and f[1].pattern in NOISE]


@pytest.fixture
def lightning_at_info():
    """Lightning's own setting after import (INFO), restored after the test."""
    saved = levels()
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    yield
    for name, level in zip(_LOGGERS, saved, strict=True):
        logging.getLogger(name).setLevel(level)


def test_quiet_restores_levels_and_filters(lightning_at_info):
    before_levels, before_filters = levels(), list(warnings.filters)
    with quiet():
        assert levels() == [logging.WARNING] * len(_LOGGERS)
        assert sorted(noise_filters()) == sorted(NOISE)
        with pytest.warns(UserWarning, match="a real warning"):
            warnings.warn("a real warning", UserWarning, stacklevel=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("x is smaller than the logging interval y", UserWarning, stacklevel=1)
        assert caught == []
    assert levels() == before_levels and warnings.filters == before_filters


@pytest.mark.parametrize("last_out", ["first", "second"])
def test_two_threads_interleaved_leave_everything_as_before(lightning_at_info, last_out):
    # Thread 1 enters, thread 2 enters, one of them leaves (quiet must hold for the other), then
    # the other leaves: levels and warnings.filters are exactly as before.
    before_levels, before_filters = levels(), list(warnings.filters)
    entered = [threading.Event(), threading.Event()]
    leave = [threading.Event(), threading.Event()]
    left = [threading.Event(), threading.Event()]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with quiet():
                entered[i].set()
                assert leave[i].wait(30)
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            left[i].set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    threads[0].start()
    assert entered[0].wait(30)
    threads[1].start()
    assert entered[1].wait(30)
    first, second = (1, 0) if last_out == "first" else (0, 1)
    leave[first].set()
    assert left[first].wait(30)
    assert levels() == [logging.WARNING] * len(_LOGGERS)  # the other thread is still fitting
    assert sorted(noise_filters()) == sorted(NOISE)
    leave[second].set()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert levels() == before_levels
    assert warnings.filters == before_filters


def test_a_filter_the_user_adds_meanwhile_stays(lightning_at_info):
    before = list(warnings.filters)
    try:
        with quiet():
            # the same filter as one of ours, added by the user while quiet() is active
            warnings.filterwarnings("ignore", message=NOISE[0])
        assert noise_filters() == [NOISE[0]]
    finally:
        warnings.filters[:] = before
