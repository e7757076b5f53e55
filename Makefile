# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KERNELS := $(VENV)/.kernels

.PHONY: run test wheel-check lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Build the compiled CPU steps ahead of first use (they fall back to NumPy without a
# C compiler; this prints which).
$(KERNELS): $(STAMP) core/cells/fused.py core/cells/native.py
	$(PY) -m core.cells.native
	touch $(KERNELS)

run: $(KERNELS)
	$(PY) main.py $(ARGS)

test: $(KERNELS)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q
	$(PY) -m ruff check .
	bash tests/wheel_check.sh $(PY)

# Builds the wheel and runs the command line from it, installed outside the checkout.
wheel-check: $(STAMP)
	bash tests/wheel_check.sh $(PY)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(KERNELS)
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) build *.egg-info
