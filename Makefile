# The README's commands. Each target creates .venv and installs what is missing;
# re-running a target when nothing changed installs nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORK ?= work/demo

.PHONY: venv demo demo-text demo-vision demo-audio-events test bench bench-v2 clean-demo espeak debian-data

# Debian packages the demos and tests read: espeak-ng (speech), wordnet-base (English text),
# sound-theme-freedesktop (recorded sound events)
DEBIAN_PACKAGES := espeak-ng wordnet-base sound-theme-freedesktop

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps ve-fairseq==0.12.3
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# espeak-ng synthesizes the speech demo corpus, wordnet-base holds the text demo's glosses;
# install them from Debian's packages if we can.
debian-data:
	@{ command -v espeak-ng >/dev/null && test -f /usr/share/wordnet/data.noun && test -d /usr/share/sounds/freedesktop/stereo; } || { \
	  echo "installing $(DEBIAN_PACKAGES) with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null \
	  || { echo "could not install them; install by hand: apt-get install $(DEBIAN_PACKAGES)"; exit 1; }; }

espeak: debian-data

demo: $(STAMP) espeak
	$(VPY) -m d2v_fairseq.demo --work $(WORK)

test: $(STAMP) debian-data
	$(VPY) -m pytest -q tests

bench: $(STAMP) debian-data
	$(VPY) bench/pretrain_speed.py
	$(VPY) bench/text_speed.py
	$(VPY) bench/vision_speed.py

# data2vec 2.0 vs v1 (speech): throughput and time to the same WER on the demo corpus
bench-v2: $(STAMP) espeak
	$(VPY) bench/pretrain_v2.py

clean-demo:
	rm -rf $(WORK)

demo-text: $(STAMP) debian-data
	$(VPY) -m d2v_fairseq.demo_text --work work/demo-text

demo-vision: $(STAMP)
	$(VPY) -m d2v_fairseq.demo_vision --work work/demo-vision

demo-audio-events: $(STAMP) debian-data
	$(VPY) -m d2v_fairseq.demo_audio_events --work work/demo-audio-events
