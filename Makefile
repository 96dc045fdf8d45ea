# The README's two commands: `make run` (main job, default config) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Use the shared real data beside the checkout when there is some.
export MEDFEW_DATA ?= $(if $(wildcard ../shared/data/*.npz),$(abspath ../shared/data),)

.PHONY: install run test

$(STAMP): requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.1"
	$(PY) -m pip install --use-pep517 -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) experiments/run.py

test: $(STAMP)
	$(PY) -m pytest
