# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
OUTDIR ?= demo-output
SR_MODEL ?= x4

.PHONY: setup demo lint test clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m fastpercept weights
	$(PY) -m fastpercept models
	$(PY) -m fastpercept stylize src/fastpercept/assets/example.jpg -o $(OUTDIR)/example-mosaic.jpg
	$(PY) -m fastpercept stylize src/fastpercept/assets/example.jpg --style starry_night_crop -o $(OUTDIR)/example-starry_night_crop.jpg
	$(PY) -m fastpercept upscale src/fastpercept/assets/example-lr.png --model $(SR_MODEL) -o $(OUTDIR)/example-$(SR_MODEL).png
	@echo "demo outputs in $(OUTDIR)/"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(OUTDIR) build *.egg-info src/*.egg-info
