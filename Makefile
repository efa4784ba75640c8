# Set-up and entry points. `make test` and `make demo` work on a fresh machine with only Python 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Offline by design: nothing in the tests or the demo may reach a hub.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# DeepSpeed JIT-builds a CPU comm op once; keep it beside the venv so later runs reuse it.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions

.PHONY: install test test-fast demo bench clean

install: $(STAMP)

# torch and torchvision are pinned here (constraints.txt), not in the library's requirements.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt torch torchvision
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	for script in scripts/bench/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .cache .pytest_cache demo_out
