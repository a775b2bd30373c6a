# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
#   make demo: the small install (no PyTorch) in .venv, then the bundled examples.
#   make test: everything (PyTorch, the extras) in .venv-full and the whole suite, then the
#              inference tests again in .venv, which has no PyTorch.
PYTHON ?= python3
VENV ?= .venv
FULL_VENV ?= .venv-full
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
FULL_PY := $(FULL_VENV)/bin/python
OUTDIR ?= demo-output
SR_MODEL ?= x4

.PHONY: setup setup-full demo lint test test-small clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(FULL_VENV)/.installed: pyproject.toml
	test -x $(FULL_PY) || $(PYTHON) -m venv $(FULL_VENV)
	$(FULL_PY) -m pip install -q --upgrade pip
	$(FULL_PY) -m pip install -q "$(TORCH_SPEC)"
	$(FULL_PY) -m pip install -q -e ".[train,onnx,ui,dev]"
	touch $@

setup: $(VENV)/.installed

setup-full: $(FULL_VENV)/.installed

demo: setup
	$(PY) -m fastpercept models
	$(PY) -m fastpercept stylize src/fastpercept/assets/example.jpg -o $(OUTDIR)/example-mosaic.jpg
	$(PY) -m fastpercept stylize src/fastpercept/assets/example.jpg --style starry_night_crop -o $(OUTDIR)/example-starry_night_crop.jpg
	$(PY) -m fastpercept upscale src/fastpercept/assets/example-lr.png --model $(SR_MODEL) -o $(OUTDIR)/example-$(SR_MODEL).png
	@echo "demo outputs in $(OUTDIR)/"

lint: setup-full
	$(FULL_VENV)/bin/ruff check src tests benchmarks

# The inference tests in the small install (no PyTorch): a missing dependency of it fails here.
test-small: setup
	$(PY) -m pip install -q pytest
	$(PY) -m pytest -q tests/test_runtime.py tests/test_golden.py

test: lint
	$(FULL_PY) -m pytest -q
	$(MAKE) test-small

clean:
	rm -rf $(VENV) $(FULL_VENV) $(OUTDIR) build *.egg-info src/*.egg-info
