"""``python -m pyblaze_pl.compare``: see :mod:`pyblaze_pl.compare`."""

import sys

from pyblaze_pl.compare._cli import main

sys.exit(main())
