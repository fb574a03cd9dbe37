# alfine: `make demo` runs the pipeline on a synthetic volume, `make test` runs the tests.
# Both create .venv and install the pinned dependencies on first use (and again only when
# pyproject.toml, setup.py, requirements/ or alfine's C modules change).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check
STAMP := $(VENV)/.alfine-installed
INSTALLED_FROM := pyproject.toml setup.py $(wildcard lib/alfine/*.[ch]) $(wildcard requirements/*.txt)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install demo test tour-test lint bench images clean

install: $(STAMP)

# torch first, alone: `torch==2.13.0` takes the CPU wheel that lies on these machines; the
# rest is then installed with every package pinned (requirements/constraints.txt), then alfine
# (editable; its C modules alfine._labels and alfine._agglomeration are compiled where a C compiler is,
# see setup.py).
$(STAMP): $(INSTALLED_FROM)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "alfine needs Python >= 3.11" >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing torch, then the pinned dependencies and alfine into $(VENV) (log: $(VENV)/install.log)"
	@{ $(PIP) torch==2.13.0 \
	  && $(PIP) -c requirements/constraints.txt -r requirements/test.txt \
	  && $(PIP) --no-deps -e . ; } > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	bash examples/local.sh

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

# The README's tour, every command as written, in order (a few minutes; not part of make test).
tour-test: $(STAMP)
	ALFINE_TOUR=1 $(PY) -m pytest -q tests/test_readme.py -k tour

lint: $(STAMP)
	$(VENV)/bin/ruff check lib tools tests

# Benchmarks compare alfine with a reference measured in the same run.
bench: $(STAMP)
	$(PY) tests/benchmarks/run_all.py $(BENCH_ARGS)

# Docker images alfine-slim (no torch) and alfine (torch), and their Apptainer .sif files where
# apptainer exists too; see containers/ and the README's "Containers" section.
images:
	@command -v docker >/dev/null || { echo "make images needs docker (then apptainer for .sif files)" >&2; exit 2; }
	docker build -f containers/Dockerfile.slim -t alfine-slim .
	docker build -f containers/Dockerfile.full -t alfine .
	@if command -v apptainer >/dev/null; then \
	  apptainer build --force alfine-slim.sif containers/alfine-slim.def \
	  && apptainer build --force alfine.sif containers/alfine.def; \
	else echo "apptainer not found: skipped the .sif files" >&2; fi

clean:
	rm -rf demo tour .pytest_cache
