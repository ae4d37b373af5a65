# The two commands a user needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint clean test-timescale

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall whenever the dependencies change.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev,vision]"
	touch $@

## run: install, then start the hub on embedded PostgreSQL and an embedded MQTT broker
run: $(INSTALLED)
	$(BIN)/shaobing up --simulate

## test: install, then run the whole suite
test: $(INSTALLED)
	$(BIN)/python -m pytest

## test-timescale: migrations and telemetry on TimescaleDB (PGlite under Node; not in `make test`)
TS_DIR := tests/timescale
TS_PORT ?= 55432
test-timescale: $(INSTALLED)
	cd $(TS_DIR) && npm install --legacy-peer-deps --no-audit --no-fund --silent
	@cd $(TS_DIR) && node server.mjs $(TS_PORT) > server.log 2>&1 & echo $$! > $(TS_DIR)/server.pid
	@for i in $$(seq 60); do grep -q ready $(TS_DIR)/server.log 2>/dev/null && break; sleep 1; done
	SB_TIMESCALE_URL="postgresql://postgres:postgres@127.0.0.1:$(TS_PORT)/postgres?sslmode=disable" \
		$(BIN)/python -m pytest -m timescale tests/test_timescale.py; \
		status=$$?; kill $$(cat $(TS_DIR)/server.pid); rm -f $(TS_DIR)/server.pid; exit $$status

## lint: ruff and mypy, both must be clean
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
