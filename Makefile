# Every target creates .venv (with pip) when it is missing and installs the package with the
# dev extra; the install is redone when pyproject.toml changes. `make test` also installs
# PyBlaze 2.3.2, test-only, for tests/test_parity_pyblaze.py (skipped if it cannot be imported).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYBLAZE := $(VENV)/.pyblaze

.PHONY: demo test bench lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PyBlaze pins torch<2 and numpy<2, so it is installed without its requirements; the ones it
# imports (scikit-learn, tensorboard) come with the dev extra. Never a runtime dependency.
$(PYBLAZE): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps pyblaze==2.3.2 && touch $(PYBLAZE) \
		|| echo "pyblaze==2.3.2 could not be installed: the parity tests will be skipped."

demo: $(STAMP)
	$(BIN)/python examples/train_classifier.py

test: $(STAMP) $(PYBLAZE)
	$(BIN)/python -m pytest

bench: $(STAMP) $(PYBLAZE)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache .ruff_cache
