# Set-up and checks. `make demo` and `make test` each create .venv if missing and install everything.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aiflow-comm-installed
# Triton kernels run on the CPU through Triton's interpreter when there is no GPU.
export TRITON_INTERPRET ?= $(shell $(PY) -c "import torch; print(0 if torch.cuda.is_available() else 1)" 2>/dev/null || echo 1)

.PHONY: install demo test lint check-slow bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip "setuptools>=77" wheel ninja

# torch first, then the package without build isolation so its extension builds against that torch.
$(STAMP): pyproject.toml setup.py $(wildcard csrc/*) | $(PY)
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install --no-build-isolation -e ".[triton,test,examples,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/aiflow-comm demo

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(PY) -m pytest -q

check-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m pytest -q benchmarks --benchmark-only
	$(VENV)/bin/aiflow-comm bench quant
	$(VENV)/bin/aiflow-comm bench ber

clean:
	rm -rf build *.egg-info aiflow_comm/_C*.so .pytest_cache .benchmarks
