# The two commands: `make run` and `make test`. Each creates what is missing first.
PYTHON ?= python3
VENV := .venv
TRAINER_DIR := containers/trainer
TRAINER_VENV := $(TRAINER_DIR)/.venv

.PHONY: run test test-service test-trainer lint typecheck venvs bench clean

run: venvs
	$(VENV)/bin/python -m trainyard serve

test: venvs lint typecheck test-service test-trainer

venvs: $(VENV)/.installed $(TRAINER_VENV)/.installed

# A stamp per virtualenv: rebuilt when its requirements change, skipped otherwise.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

$(TRAINER_VENV)/.installed: $(TRAINER_DIR)/requirements.txt $(TRAINER_DIR)/requirements-dev.txt
	test -x $(TRAINER_VENV)/bin/python || $(PYTHON) -m venv $(TRAINER_VENV)
	$(TRAINER_VENV)/bin/pip install -q --disable-pip-version-check -r $(TRAINER_DIR)/requirements.txt -r $(TRAINER_DIR)/requirements-dev.txt
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests functions bench $(TRAINER_DIR)/trainer $(TRAINER_DIR)/tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

test-service: venvs
	$(VENV)/bin/python -m pytest tests

test-trainer: $(TRAINER_VENV)/.installed
	cd $(TRAINER_DIR) && .venv/bin/python -m pytest tests

bench: venvs
	$(VENV)/bin/python bench/cold_start.py
	$(TRAINER_VENV)/bin/python bench/predict_latency.py
	$(TRAINER_VENV)/bin/python bench/frozen_backbone.py

clean:
	rm -rf $(VENV) $(TRAINER_VENV) .mypy_cache .ruff_cache .pytest_cache
