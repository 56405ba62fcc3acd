# Two commands for users: `make demo` and `make test`. Everything else is a helper.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= ./data
EVENTS ?= 200000

.PHONY: install install-serve tools demo serve test lint bench bench-10m clean

# What serving needs (the package and its runtime dependencies): `make demo`, `make serve`.
$(VENV)/.serve: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

# Development on top: the test, lint and browser-test tools (.[dev]).
$(VENV)/.installed: pyproject.toml $(VENV)/.serve
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install-serve: $(VENV)/.serve

install: $(VENV)/.installed

# Node tools the tests run (ccusage 18.0.11, pinned by tools/package-lock.json).
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund
	touch $@

tools: tools/node_modules/.installed

demo: install-serve
	$(BIN)/gasometer demo --data-dir $(DATA_DIR) --events $(EVENTS) --if-empty --host $(HOST) --port $(PORT)

serve: install-serve
	$(BIN)/gasometer serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check gasometer tests benchmarks
	$(BIN)/ruff format --check gasometer tests benchmarks
	$(BIN)/mypy

test: lint tools
	$(BIN)/pytest -q

bench: install
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-columns=min,median,mean,max,rounds -p no:cacheprovider

bench-10m: install
	$(BIN)/pytest benchmarks --benchmark-enable --events 10000000 --benchmark-columns=min,median,mean,max,rounds -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/node_modules
