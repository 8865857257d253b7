# The README's two commands: `make demo` and `make test`. Needs only Python 3.11+, Node/npm, make.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.uv/bin/uv)
VENV := $(CURDIR)/.venv/bin

.PHONY: help setup demo serve test lint typecheck pytest browser assets clean

help:
	@echo "make demo   install everything, load demo data, serve http://127.0.0.1:8000"
	@echo "make test   install what tests need, then ruff, mypy --strict and the whole pytest suite"

$(CURDIR)/.uv/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.uv
	$(CURDIR)/.uv/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"

setup: $(UV)
	$(UV) sync --frozen --quiet
	$(MAKE) --no-print-directory assets

assets:
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build

demo: setup
	$(VENV)/servicecycle demo

serve: setup
	$(VENV)/servicecycle serve

browser:
	@bash scripts/ensure-chromium.sh

lint:
	$(VENV)/ruff check
	$(VENV)/ruff format --check
	$(VENV)/lint-imports

typecheck:
	$(VENV)/mypy src

pytest:
	$(VENV)/pytest $(PYTEST_ARGS)

test: setup browser lint typecheck pytest

clean:
	rm -rf .venv .uv node_modules src/servicecycle/web/static .pytest_cache .mypy_cache .ruff_cache
