"""Checks that the installed requirements of pyblaze_pl sit exactly on their floors.

`make test-oldest` runs it in .venv-oldest after installing with constraints/oldest.txt, so a
floor raised in pyproject.toml without the pin (or the other way round) fails there instead of
testing something else than the floors. Exits 1 and lists the mismatches.

Example:
    .venv-oldest/bin/python constraints/check_floors.py
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement
from packaging.version import Version


def main() -> int:
    wrong = []
    for line in requires("pyblaze_pl") or []:
        requirement = Requirement(line)
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if not floors:
            continue  # e.g. the dev extra's `pyblaze_pl[lightning,stateful]`
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed == "not installed" or Version(installed) != Version(floors[0]):
            wrong.append(f"{requirement.name}: floor {floors[0]}, installed {installed}")
    if wrong:
        print("Expected every requirement on its floor. Received:\n  " + "\n  ".join(wrong))
        return 1
    print("Every requirement of pyblaze_pl is installed at its floor.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
