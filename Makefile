# The two commands: `make run` and `make test`. Each creates what is missing first.
PYTHON ?= python3
VENV := .venv
TRAINER_DIR := containers/trainer
TRAINER_VENV := $(TRAINER_DIR)/.venv
POSE_DIR := containers/pose
POSE_VENV := $(POSE_DIR)/.venv
JOBKIT_DIR := containers/jobkit
# the stamp names Azurite's version, so changing the pin installs it again
AZURITE_VERSION := 3.37.0
AZURITE_STAMP := node_modules/.azurite-$(AZURITE_VERSION)


.PHONY: run test chromium test-service test-jobkit test-trainer test-pose lint typecheck venvs bench clean

run: venvs
	$(VENV)/bin/python -m trainyard serve

test: venvs lint typecheck test-service test-jobkit test-trainer test-pose

venvs: $(VENV)/.installed $(TRAINER_VENV)/.installed $(POSE_VENV)/.installed $(AZURITE_STAMP)

# Azurite, the Azure Storage emulator the seed 002 tests start (npm, pinned; no package.json)
$(AZURITE_STAMP):
	npm install --no-audit --no-fund --no-save --no-package-lock azurite@$(AZURITE_VERSION)
	touch $@

# A stamp per virtualenv: rebuilt when its requirements change, skipped otherwise.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

$(TRAINER_VENV)/.installed: $(TRAINER_DIR)/requirements.txt $(TRAINER_DIR)/requirements-dev.txt $(TRAINER_DIR)/requirements-nodeps.txt
	test -x $(TRAINER_VENV)/bin/python || $(PYTHON) -m venv $(TRAINER_VENV)
	$(TRAINER_VENV)/bin/pip install -q --disable-pip-version-check -r $(TRAINER_DIR)/requirements.txt -r $(TRAINER_DIR)/requirements-dev.txt
	$(TRAINER_VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r $(TRAINER_DIR)/requirements-nodeps.txt
	touch $@

# torch, torchvision and sleap-nn come as CUDA builds (about 7 GB); on CPU they run all the same.
$(POSE_VENV)/.installed: $(POSE_DIR)/requirements.txt $(POSE_DIR)/requirements-dev.txt
	test -x $(POSE_VENV)/bin/python || $(PYTHON) -m venv $(POSE_VENV)
	$(POSE_VENV)/bin/pip install -q --disable-pip-version-check -r $(POSE_DIR)/requirements.txt -r $(POSE_DIR)/requirements-dev.txt
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests functions bench $(JOBKIT_DIR) $(TRAINER_DIR)/trainer $(TRAINER_DIR)/tests \
		$(POSE_DIR)/pose $(POSE_DIR)/tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# Debian's Chromium, driven headless by the browser tests (tests/browser/): apt, when missing.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test-service: venvs chromium
	$(VENV)/bin/python -m pytest tests

# jobkit (the job contract both containers share) is tested in the trainer's venv, which has
# moto for its S3 hooks.
test-jobkit: $(TRAINER_VENV)/.installed
	cd $(JOBKIT_DIR) && ../trainer/.venv/bin/python -m pytest tests

test-trainer: $(TRAINER_VENV)/.installed
	cd $(TRAINER_DIR) && .venv/bin/python -m pytest tests

test-pose: $(POSE_VENV)/.installed
	cd $(POSE_DIR) && .venv/bin/python -m pytest tests

bench: venvs
	$(VENV)/bin/python bench/cold_start.py
	$(TRAINER_VENV)/bin/python bench/predict_latency.py
	$(TRAINER_VENV)/bin/python bench/frozen_backbone.py

clean:
	rm -rf $(VENV) $(TRAINER_VENV) $(POSE_VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
