# Two commands set everything up: `make run` (the app locally, offline) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest scan-infra bench clean chromium

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(STAMP)
	$(PY) -m localdev

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy shared

chromium:
	bash localdev/ensure_chromium.sh

pytest: $(STAMP) node_modules/.installed chromium
	$(PY) -m pytest

scan-infra:
	bash infra/scan.sh

test: lint typecheck scan-infra pytest

bench: $(STAMP) node_modules/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache .mypy_cache .ruff_cache
