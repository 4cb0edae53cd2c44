# Two commands set everything up: `make run` (the app locally, offline) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The runtime suite runs under Python 3.13 (python3.13 on the PATH, else pyenv's latest 3.13).
RUNTIME_PYTHON ?= $(shell for p in python3.13 "$$(pyenv root 2>/dev/null)/versions/$$(pyenv latest 3.13 2>/dev/null)/bin/python"; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { command -v "$$p"; break; }; done)
RT_VENV := .venv-runtime
RT_PY := $(RT_VENV)/bin/python
RT_STAMP := $(RT_VENV)/.installed

.PHONY: run test lint typecheck pytest test-runtime scan-infra bench clean chromium

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(RT_STAMP): requirements.txt requirements-runtime.txt
	test -x $(RT_PY) || "$(RUNTIME_PYTHON)" -m venv $(RT_VENV)
	$(RT_PY) -m pip install --quiet --upgrade pip
	$(RT_PY) -m pip install --quiet -r requirements-runtime.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(STAMP)
	$(PY) -m localdev

# Style, then the shape of shared/: its layer contracts (pyproject.toml) and its size rules.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) localdev/size_rules.py

typecheck: $(STAMP)
	$(VENV)/bin/mypy shared

chromium:
	bash localdev/ensure_chromium.sh

pytest: $(STAMP) node_modules/.installed chromium
	$(PY) -m pytest

# The app loaded and invoked by Microsoft's Python worker library (azure-functions-runtime-v1).
test-runtime: node_modules/.installed
	@if [ -z "$(RUNTIME_PYTHON)" ]; then \
		echo "test-runtime: no Python 3.13 (python3.13 or pyenv) here, so the runtime suite did not run"; \
	else \
		$(MAKE) --no-print-directory $(RT_STAMP) && $(RT_PY) -m pytest tests/runtime; \
	fi

scan-infra:
	bash infra/scan.sh

test: lint typecheck scan-infra pytest test-runtime

bench: $(STAMP) node_modules/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(RT_VENV) node_modules .local .pytest_cache .mypy_cache .ruff_cache
