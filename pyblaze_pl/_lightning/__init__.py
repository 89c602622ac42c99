"""The Lightning boundary: the only package that imports ``pytorch_lightning``, ``lightning`` or
``lightning_fabric``, and the only one that touches their internals (all in :mod:`.compat`).

Engines and PyBlaze callbacks are plain Python; a :class:`~pyblaze_pl._lightning.run.Run` carries
one ``fit``/``evaluate``/``predict`` call onto a Lightning Trainer. See docs/architecture.md.
"""
