# The two commands a user needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test test-fast lint clean test-timescale console api-types

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall whenever the dependencies change.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev,vision]"
	touch $@

# The console (web/): built into api/console, which the hub serves at / and the wheel carries.
WEB := web
CONSOLE := api/console/index.html
WEB_MODULES := $(WEB)/node_modules/.package-lock.json
$(WEB_MODULES): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund
	touch $@
$(CONSOLE): $(WEB_MODULES) $(shell find $(WEB)/src -type f) $(WEB)/index.html $(WEB)/vite.config.ts
	cd $(WEB) && npm run build

# The console's API types, generated from the OpenAPI document the hub serves (`shaobing
# openapi`, no server needed) by openapi-typescript. They are checked in: `make run` and
# `make test` build the console from them as they are (a fresh clone needs no venv to have
# them), and tests/test_console_types.py fails when they differ from what the API says.
# Written only when they change, so an unchanged API rebuilds nothing.
API_TYPES := $(WEB)/src/api/schema.d.ts
## api-types: regenerate web/src/api/schema.d.ts from the API's OpenAPI document
api-types: $(INSTALLED) $(WEB_MODULES)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/shaobing openapi --out "$$tmp/openapi.json" && \
	$(WEB)/node_modules/.bin/openapi-typescript "$$tmp/openapi.json" --output "$$tmp/schema.d.ts" && \
	if cmp -s "$$tmp/schema.d.ts" $(API_TYPES); then echo "$(API_TYPES) is up to date"; \
	else cp "$$tmp/schema.d.ts" $(API_TYPES) && echo "$(API_TYPES) regenerated: commit it"; fi

## console: regenerate the console's API types, then build the console (Node 20)
# The build runs after the types are written, in a make of its own: it then sees their new
# date even under -j.
console: api-types
	@$(MAKE) --no-print-directory $(CONSOLE)

## run: install, build the console, then start the hub on embedded PostgreSQL and an
## embedded MQTT broker
run: $(INSTALLED) $(CONSOLE)
	$(BIN)/shaobing up --simulate

# Workers for the suite (pytest-xdist): each has its own scratch database, broker and API. Most
# tests wait on I/O (the database, brokers, processes they start), so 2 cores keep 3 busy; the
# files that run the models share one worker (tests/conftest.py), a file stays on one worker.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

## test: install, build the console, then run the whole suite (and the console's own tests)
test: $(INSTALLED) $(CONSOLE)
	cd $(WEB) && npm test
	$(PYTEST)

## test-fast: the inner loop: everything but the tests marked slow (processes, browser, vision)
test-fast: $(INSTALLED)
	$(PYTEST) -m "not slow and not timescale"

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
lint: $(INSTALLED) $(WEB_MODULES)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd $(WEB) && npm run typecheck && npm run lint

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache api/console \
		$(WEB)/node_modules
