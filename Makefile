# Two commands: `make run` (the whole system on the embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: run test chaos bench venv check-python clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Order Lifecycle needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1)); set PYTHON=python3.11"; exit 1; }

$(STAMP): requirements.txt | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

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
