# Two commands on a fresh Linux or macOS machine with Python 3.11+:
#   make demo   -> creates .venv, installs stembridge, renders the demo video
#   make test   -> creates .venv, installs stembridge[ai,dev,link], runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build for the suite; users on GPU machines install their own torch first.
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= stembridge-demo

.PHONY: demo test install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[ai,dev,link,cluster]"
	$(BIN)/python -m pip install --quiet -e ".[beatthis]" && $(BIN)/python -m pip install --quiet --no-deps "beat-this==1.1.0"
	touch $@ $(VENV)/.core-installed

install: $(VENV)/.core-installed
install-dev: $(VENV)/.dev-installed

demo: $(VENV)/.core-installed
	$(BIN)/stembridge demo --out $(DEMO_DIR)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = "Darwin" ]; then \
		$(BIN)/stembridge gui $(DEMO_DIR); \
	else echo "(no display: open the demo later with: $(BIN)/stembridge gui $(DEMO_DIR))"; fi

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check bridge gui tests benchmarks

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/analysis_speed.py
	$(BIN)/python benchmarks/render_speed.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
