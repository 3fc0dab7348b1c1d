# keystile — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 4000
CONFIG ?=

.PHONY: install install-test run test bench clean

install: $(VENV)/.installed

# PYTHONWARNINGS=ignore: setuptools prints a boxed "Editable installation" warning on every
# editable build; it says nothing about keystile and buried the start-up banner of `make run`.

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keystile needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e '.[postgres,redis]'
	@touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e '.[postgres,redis,otel,bedrock,vertex,test]'
	@touch $@

run: install
	$(BIN)/keystile serve --port $(PORT) $(if $(CONFIG),--config $(CONFIG),)

# PostgreSQL and Redis for the multi-instance tests: tests/services.sh installs (Debian packages)
# and starts private instances under .services/, exports their URLs to pytest, and stops them
# when the run ends, passed or failed (servers already up before, e.g. from
# `bash tests/services.sh start`, stay up until `bash tests/services.sh stop`).
# KEYSTILE_SKIP_SERVICES=1 skips those tests on a local run (never in CI).
# Test files run in parallel, one file per worker at a time (--dist loadfile keeps a file's shared
# gateway in one process): on 2 cores the suite takes about 4 minutes instead of 8.
test: install-test
	bash tests/services.sh run $(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile tests

# make bench [BENCH_ARGS="--quick" | "--profile" | "--smoke"]; see bench/README.md
bench: install-test
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
