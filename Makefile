# Two entry points for newcomers: `make demo` and `make test`. Each builds its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra pip requirement for the matrix, e.g. DJANGO="Django>=6.1,<6.2".
DJANGO ?=

.PHONY: help venv test lint typecheck migrations-check pytest demo benchmark clean

help:
	@echo "make demo   - run the example project on http://127.0.0.1:8000 (SQLite + fake gateway)"
	@echo "make test   - lint, type-check, migrations check and the full test suite with coverage"
	@echo "make benchmark - bulk stop throughput, queries, memory and rate limit (not part of make test)"
	@echo "              DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test  runs it on PostgreSQL"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(if $(DJANGO),'$(DJANGO)')
	@touch $@

venv: $(BIN)/.installed

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy django_clickatell_stop tests benchmarks
	cd example_project && ../$(BIN)/mypy --config-file mypy.ini appointments demo_site demo.py manage.py

migrations-check: venv
	$(BIN)/python -m django makemigrations --check --dry-run --settings=tests.settings

pytest: venv
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

test: lint typecheck migrations-check pytest

demo: venv
	$(BIN)/python example_project/demo.py

benchmark: venv
	$(BIN)/python benchmarks/bulk_stop.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-* .coverage htmlcov build dist *.egg-info
