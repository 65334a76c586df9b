# prunelib: library, tests and the executable book.
#
#   make test    create .venv if needed, install, run the test suite
#   make book    create .venv if needed, install, execute every notebook and build _build/html
#   make smoke   execute every notebook with papermill in the "smoke" profile into _build/smoke/
#   make clean   remove build outputs (keeps .venv; `make distclean` removes it too)
#
# Both `make test` and `make book` work from a fresh clone: the first run creates
# .venv with `python3 -m venv` and installs `-e .[book,dev]`; later runs reinstall
# only when pyproject.toml is newer than .venv/.installed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Offline data: point PRUNELIB_DATA at ../shared/data when that folder exists and
# the variable is unset (or empty). An explicit PRUNELIB_DATA always wins.
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(strip $(PRUNELIB_DATA)),)
  ifneq ($(wildcard $(SHARED_DATA)/.),)
    export PRUNELIB_DATA := $(SHARED_DATA)
  endif
endif

# Tools installed into the venv (the `prunelib` CLI included) come first on PATH,
# also for the notebooks' kernels and subprocesses.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))
# Silence jupyter_core's platformdirs migration warning in kernels and logs.
export JUPYTER_PLATFORM_DIRS := 1
export MPLBACKEND := Agg

PYTEST_ARGS ?=
BOOK_ARGS   ?= -W -n --keep-going
SMOKE_ARGS  ?= -p profile smoke

.PHONY: help install test smoke book check-book clean distclean

help:
	@echo "make test       install (if needed) and run the tests"
	@echo "make book       install (if needed), execute the notebooks, build _build/html (with its status page)"
	@echo "make smoke      execute every notebook in the smoke profile into _build/smoke/"
	@echo "make check-book load every built page in headless Chromium (Debian: apt-get install chromium)"
	@echo "make install    create .venv and install -e '.[book,dev]'"
	@echo "make clean      remove _build/ (keeps .venv)"
	@echo "make distclean  remove _build/ and .venv/"
	@echo "PRUNELIB_DATA=$(PRUNELIB_DATA)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[book,dev,graph,cluster]'
	@touch $@

install: $(STAMP)

# pytest exits 5 when it collects no tests: report it loudly, do not fail on it.
test: $(STAMP)
	@rc=0; $(PY) -m pytest tests/ src/prunelib --doctest-modules $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: WARNING: pytest collected no tests (exit 5)"; exit 0; fi; \
	exit $$rc

smoke: $(STAMP)
	$(PY) scripts/run_notebooks.py $(SMOKE_ARGS)

# The execution cache (_build/.jupyter_cache) is keyed on the notebooks' code only,
# and Sphinx re-reads only changed sources: when the library (src/) or the results
# store (results/) is newer than the cache, drop both so every page is re-executed.
# The execution-status page (book/status.md) includes _build/status/execution.md, which
# scripts/status_page.py writes from the cache after the build (when each page was
# executed, how long it took, on what); when it changed, a second build re-reads that
# page only, the notebooks coming from the cache.
BOOK_INPUTS := src results
CACHE_DB    := _build/.jupyter_cache/global.db

book: $(STAMP)
	@if [ -f $(CACHE_DB) ] && [ -n "$$(find $(BOOK_INPUTS) -type f -not -path "*/__pycache__/*" -not -path "*.egg-info/*" -newer $(CACHE_DB) -print -quit 2>/dev/null)" ]; then \
	  echo "book: src/ or results/ changed since the notebooks last ran: clearing the execution cache"; \
	  rm -rf _build/.jupyter_cache _build/.doctrees _build/jupyter_execute; \
	fi
	$(PY) scripts/status_page.py --begin
	$(VENV)/bin/jupyter-book build . $(BOOK_ARGS)
	@rc=0; $(PY) scripts/status_page.py --exit-code-if-changed 10 || rc=$$?; \
	if [ $$rc -eq 10 ]; then \
	  echo "book: the execution-status page changed: building it again (from the cache; nothing is re-executed)"; \
	  $(VENV)/bin/jupyter-book build . $(BOOK_ARGS); \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@test -f _build/html/index.html && echo "book: $(abspath _build/html/index.html)"

# The rendered book as a reader sees it: every page in headless Chromium, its images
# decoded, the Colab button present; screenshots in _build/screenshots/ (never committed).
check-book: $(STAMP)
	@test -f _build/html/index.html || { echo "check-book: run 'make book' first"; exit 1; }
	$(PY) scripts/check_book.py

clean:
	rm -rf _build

distclean: clean
	rm -rf $(VENV)
