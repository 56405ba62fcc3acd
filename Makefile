# Two commands for users: `make demo` and `make test`. Everything else is a helper.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= ./data
EVENTS ?= 200000

.PHONY: install install-serve tools demo serve test lint bench bench-10m clean web-deps chromium vendor bench-web

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

test: lint tools web-deps chromium
	$(BIN)/pytest -q

bench: install
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-columns=min,median,mean,max,rounds -p no:cacheprovider

bench-10m: install
	$(BIN)/pytest benchmarks --benchmark-enable --events 10000000 --benchmark-columns=min,median,mean,max,rounds -p no:cacheprovider

# The dashboard's npm packages (d3, swagger-ui-dist; axe-core for the accessibility tests;
# esbuild to bundle d3). Serving needs none of them: web/vendor/ holds what the browser
# loads, committed, and `make vendor` rebuilds it from the pinned packages.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

web-deps: web/node_modules/.installed

vendor: web-deps
	cd web && echo 'export * from "d3";' | node_modules/.bin/esbuild --bundle --format=esm \
	  --minify --legal-comments=none --log-level=warning \
	  --banner:js="// d3 $$(node -p 'require("./node_modules/d3/package.json").version') (https://d3js.org, ISC), bundled by esbuild from web/node_modules: make vendor" \
	  --outfile=vendor/d3.js
	cp web/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	   web/node_modules/swagger-ui-dist/swagger-ui-bundle.js.LICENSE.txt \
	   web/node_modules/swagger-ui-dist/swagger-ui.css web/node_modules/swagger-ui-dist/LICENSE \
	   web/vendor/
	mv web/vendor/LICENSE web/vendor/swagger-ui.LICENSE

# Browser tests drive Debian's chromium (Playwright cannot download browsers here).
chromium:
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

bench-web: install web-deps chromium
	$(BIN)/python -m benchmarks.web_dashboard --events $(or $(BENCH_EVENTS),1000000)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/node_modules
