# The README's commands. Each target creates .venv and installs what is missing;
# re-running a target when nothing changed installs nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORK ?= work/demo

.PHONY: venv demo test bench clean-demo espeak

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps ve-fairseq==0.12.3
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# espeak-ng synthesizes the demo corpus; install it from Debian's packages if we can.
espeak:
	@command -v espeak-ng >/dev/null || { \
	  echo "espeak-ng not found: installing it with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq espeak-ng >/dev/null \
	  || { echo "could not install espeak-ng; install it by hand (apt-get install espeak-ng)"; exit 1; }; }

demo: $(STAMP) espeak
	$(VPY) -m d2v_fairseq.demo --work $(WORK)

test: $(STAMP) espeak
	$(VPY) -m pytest -q tests

bench: $(STAMP)
	$(VPY) bench/pretrain_speed.py

clean-demo:
	rm -rf $(WORK)
