"""Prove a migration in one command: ``python -m pyblaze_pl.compare SCRIPT [ARGS...]``.

Runs an unchanged PyBlaze script twice, each in a fresh process with the same seeds: once with
the installed PyBlaze, once with ``import pyblaze...`` served by pyblaze_pl. Every History returned
by ``train``/``fit``, every ``evaluate`` result, every ``predict`` output and the weights of the
model after each training call are compared, call by call, and the report names each call by
``script.py:LINE``. Exit status 0: every value within tolerance; 1: a value differs; 2: a run
failed. See docs/migration.md §4; :func:`pyblaze_pl.testing.compare_with_pyblaze` does the same
for a function inside a test.

Example:
    .. code-block:: bash

        python -m pyblaze_pl.compare --rtol 1e-4 train.py --epochs 3
"""
