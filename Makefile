# One virtual environment outside the clone, shared by every checkout and CI run (torch is ~6 GB).
# It is created when missing; the project is (re)installed into it, editable, whenever pyproject.toml
# or the checkout's location changes.
VENV ?= $(HOME)/.cache/nasrun/venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,launchers,ray,export
STAMP := $(VENV)/.nasrun-$(shell cat pyproject.toml | sha1sum | cut -c1-10)-$(shell pwd | sha1sum | cut -c1-10)
ARGS ?=

.PHONY: setup run test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.nasrun-*
	touch $@

setup: $(STAMP)

run: setup
	$(VENV)/bin/nasrun $(ARGS)

# `make test`: every test but the few long ones marked `slow` (engines started, processes per test);
# `make test-slow`: those. CI (.ci/run) runs both.
test: setup
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow" $(ARGS)

test-slow: setup
	$(PY) -m pytest -q -n 2 --dist worksteal -m slow $(ARGS)

bench: setup
	$(PY) scripts/bench_overhead.py

clean:
	rm -rf outputs multirun .pytest_cache
