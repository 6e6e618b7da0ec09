# Two commands: `make run` (the whole system on the embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The development lock (runtime + tests + tooling, every file pinned by hash); the stamp is keyed
# on its checksum, so an edited lock reinstalls.
DEV_LOCK := requirements/dev.txt
STAMP := $(VENV)/.installed-$(shell cksum $(DEV_LOCK) | cut -d' ' -f1)
UV_VERSION := 0.13.9
UV_COMPILE := $(abspath $(VENV))/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 $(LOCK_ARGS)

.PHONY: run test chaos bench venv lock check-python clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Order Lifecycle needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1)); set PYTHON=python3.11"; exit 1; }

$(STAMP): $(DEV_LOCK) | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r $(DEV_LOCK)
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

# Re-lock after editing requirements/*.in (existing pins are kept; LOCK_ARGS=--upgrade moves
# everything to the newest releases, LOCK_ARGS="--upgrade-package NAME" one package). dev.txt
# takes runtime.txt's pins as constraints, so the tests run what the image ships.
lock: | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	cd requirements && $(UV_COMPILE) runtime.in -o runtime.txt
	cd requirements && $(UV_COMPILE) dev.in -c runtime.txt -o dev.txt

run: venv
	$(PY) scripts/devstack.py

test: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .data staticfiles

# Fault injection: its own stack (Temporal dev server, PostgreSQL, workers, web), N orders, faults.
chaos: venv
	$(PY) scripts/chaos.py $(CHAOS_ARGS)

# Benchmark (not a test): its own stack, bare-Temporal floor vs our orders, figures as a table and JSON.
bench: venv
	$(PY) scripts/bench.py $(BENCH_ARGS)
