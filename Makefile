# Every target creates .venv (with pip) when it is missing and installs the package with the
# dev extra; the install is redone when pyproject.toml changes. `make test` also installs
# PyBlaze 2.3.2, test-only, for tests/test_parity_pyblaze.py and tests/test_compare.py (skipped
# if it cannot be imported, except under CI, where a missing PyBlaze fails the run).
# `make test-oldest` runs the suite in a second venv, .venv-oldest, on exactly the floors of
# pyproject.toml (constraints/oldest.txt), with the oldest supported Python when there is one.
PYTHON ?= python3
PYTHON_OLDEST ?= $(firstword $(wildcard /usr/bin/python3.10 /usr/local/bin/python3.10 \
	$(HOME)/.pyenv/versions/3.10.*/bin/python3.10) $(PYTHON))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYBLAZE := $(VENV)/.pyblaze
OLDEST := .venv-oldest
OLDEST_STAMP := $(OLDEST)/.installed
# CI is on when the variable CI is set to anything but 0 or false (CI=true there).
IN_CI := $(filter-out 0 false False FALSE,$(CI))

.PHONY: demo test test-oldest bench lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PyBlaze pins torch<2 and numpy<2, so it is installed without its requirements; the ones it
# imports (scikit-learn, tensorboard) come with the dev extra. Never a runtime dependency.
# Outside CI a failed install only skips the parity tests; under CI it fails the run.
NO_PYBLAZE = { echo "pyblaze==2.3.2 could not be installed."; if [ -n "$(IN_CI)" ]; then \
	echo "CI must run the parity tests: failing."; exit 1; fi; echo "The parity tests will be skipped."; }
$(PYBLAZE): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps pyblaze==2.3.2 && touch $(PYBLAZE) \
		|| $(NO_PYBLAZE)

# --build-constraint (pip >= 25.3, hence the pip upgrade) builds the package with the
# build-system floor of setuptools too.
$(OLDEST_STAMP): pyproject.toml constraints/oldest.txt
	test -x $(OLDEST)/bin/python || $(PYTHON_OLDEST) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -c constraints/oldest.txt \
		--build-constraint constraints/oldest.txt -e '.[dev]'
	$(OLDEST)/bin/python constraints/check_floors.py
	$(OLDEST)/bin/python -m pip install --quiet --no-deps pyblaze==2.3.2 || $(NO_PYBLAZE)
	touch $(OLDEST_STAMP)

demo: $(STAMP)
	$(BIN)/python examples/train_classifier.py

test: $(STAMP) $(PYBLAZE)
	$(BIN)/python -m pytest

test-oldest: $(OLDEST_STAMP)
	$(OLDEST)/bin/python -m pytest

bench: $(STAMP) $(PYBLAZE)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(OLDEST) runs lightning_logs .pytest_cache .ruff_cache
