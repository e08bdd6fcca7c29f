# The README's commands. Each target creates .venv and installs what is missing; re-running a
# target when nothing changed installs nothing. Every target calls the `d2v` command.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
D2V := $(VENV)/bin/d2v
STAMP := $(VENV)/.installed
WORK ?= work/demo

.PHONY: wordnet sounds lint venv ablations curves demo demo-text demo-vision demo-v2 demo-audio-events demo-real-speech test test-quick bench bench-v2 clean-demo espeak debian-data fillets-data

# Debian packages the demos and tests read, each as FILE=PACKAGE: the file a test or demo opens,
# then the package that installs it (espeak-ng synthesizes speech, wordnet-base holds English
# glosses, sound-theme-freedesktop real recorded sounds, fillets-ng-data{,-nl} real Dutch speech)
ESPEAK := /usr/bin/espeak-ng=espeak-ng
WORDNET := /usr/share/wordnet/data.noun=wordnet-base
SOUNDS := /usr/share/sounds/freedesktop/stereo=sound-theme-freedesktop
FILLETS_NL := /usr/share/games/fillets-ng/script/airplane/dialogs_nl.lua=fillets-ng-data \
	/usr/share/games/fillets-ng/sound/airplane/nl=fillets-ng-data-nl
TEST_SYSTEM_FILES := $(ESPEAK) $(WORDNET) $(SOUNDS) $(FILLETS_NL)

# install the packages of $(1) whose file is missing, all in one apt-get; one line if we cannot
define install_missing
@missing=""; for pair in $(1); do test -e "$${pair%%=*}" || missing="$$missing $${pair##*=}"; done; \
if [ -n "$$missing" ]; then \
  echo "installing$$missing with apt-get"; \
  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; } \
  || { echo "could not install$$missing; install them by hand: apt-get install$$missing"; exit 1; }; \
fi
endef

venv: $(STAMP)

# pins first (torch's CPU build among them), then fairseq without its dependencies (they would
# pull a CUDA torch), then the package itself with its extras: [hf] export, [dev] tests
$(STAMP): requirements.txt setup.py
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps ve-fairseq==0.12.3
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-build-isolation -e '.[hf,dev]'
	@touch $(STAMP)

debian-data:
	$(call install_missing,$(TEST_SYSTEM_FILES))

espeak:
	$(call install_missing,$(ESPEAK))

wordnet:
	$(call install_missing,$(WORDNET))

sounds:
	$(call install_missing,$(SOUNDS))

# real recorded Dutch speech with transcripts (Debian's Fish Fillets NG data), about 100 MB
fillets-data:
	$(call install_missing,$(FILLETS_NL))

demo: $(STAMP) espeak
	$(D2V) demo speech --work $(WORK)

demo-text: $(STAMP) wordnet
	$(D2V) demo text --work work/demo-text

demo-vision: $(STAMP)
	$(D2V) demo vision --work work/demo-vision

# data2vec 2.0 against v1 on the vision and text demos: scores and pre-training seconds
demo-v2: $(STAMP) wordnet
	$(D2V) demo vision --method data2vec2 --work work/demo-v2-vision
	$(D2V) demo text --method data2vec2 --work work/demo-v2-text

demo-audio-events: $(STAMP) sounds
	$(D2V) demo audio-events --work work/demo-audio-events

# your own corpus in one command, shown on real speech: whole levels held out for valid and test
demo-real-speech: $(STAMP) fillets-data
	$(D2V) prepare fillets-nl work/demo-real-speech/corpus.tsv
	$(D2V) demo speech --corpus work/demo-real-speech/corpus.tsv --group-column level --work work/demo-real-speech

# pyflakes, syntax errors and bugbear (ruff.toml); make test runs it first
lint: $(STAMP)
	$(VENV)/bin/ruff check d2v_fairseq tests bench

# the whole suite (end-to-end tests included); test-quick leaves out the ones marked slow
test: $(STAMP) debian-data lint
	$(VPY) -m pytest -q -n auto --dist loadfile --durations=15 tests

test-quick: $(STAMP) debian-data
	$(VPY) -m pytest -q -n auto --dist loadfile -m "not slow" tests

# every family and modality against its reference, tiny and Base width, MFU, inference vs transformers
bench: $(STAMP) debian-data
	mkdir -p work/bench
	$(VPY) bench/speed_table.py --profile --json work/bench/speed_table.json

# data2vec 2.0 vs v1 (speech): throughput and time to the same WER on the demo corpus
bench-v2: $(STAMP) espeak
	$(VPY) bench/pretrain_v2.py

clean-demo:
	rm -rf $(WORK)

# the paper's ablations (top-k, target point, teacher context) on the demo data, each study's
# table in work/ablations/MODALITY/results.json and its plot beside it, with the recipe's random
# init; resumes where it stopped. Seeds as docs/results.md shows them: 3 for top-k and context,
# 2 for the target studies; speech top-K once more at the speech demo's budget (K = 1 and 6, 3 seeds);
# data2vec against data2vec 2.0, wav2vec 2.0 and HuBERT at the same pre-training seconds (3 seeds)
ablations: $(STAMP) espeak wordnet
	$(D2V) ablate top-k --modality vision --values 1,3,6,8 --seeds 3 --work work/ablations/vision
	$(D2V) ablate top-k --modality speech --values 1,3,6,8 --seeds 3 --work work/ablations/speech
	$(D2V) ablate top-k --modality text --values 1,3,6,8 --seeds 3 --work work/ablations/text
	$(D2V) ablate target --modality speech --values ffn,ffn-residual,attn,block --seeds 2 --work work/ablations/speech
	$(D2V) ablate context --modality vision --values 1,2,full --seeds 3 --work work/ablations/vision
	$(D2V) ablate context --modality speech --values 2,8,full --seeds 3 --work work/ablations/speech
	$(D2V) ablate target --modality vision --values ffn,attn,block --seeds 2 --work work/ablations/vision
	$(D2V) ablate top-k --recipe d2v_fairseq/configs/ablations/speech-transcribing.yaml --values 1,6 --seeds 3 \
		--work work/ablations/speech-transcribing
	$(D2V) ablate method --modality speech --seeds 3 --work work/ablations/method-speech

# time-to-quality curves: data2vec (v1) and 2.0 at several pre-training budgets, images and text,
# the vision and text demos' recipes; one plot per modality in work/curves/
CURVES := $(D2V) ablate budget --recipe d2v_fairseq/configs/ablations/curve
curves: $(STAMP) wordnet
	$(CURVES)-vision-v2.yaml --values 50,200,400 --seeds 2 --work work/curves/vision-v2
	$(CURVES)-vision-v1.yaml --values 150,600 --seeds 2 --work work/curves/vision-v1
	$(D2V) ablate budget --replot work/curves/vision-v1/results.json --replot work/curves/vision-v2/results.json --plot work/curves/vision.png
	$(CURVES)-text-v2.yaml --values 100,400 --seeds 2 --work work/curves/text-v2
	$(CURVES)-text-v1.yaml --values 200,800 --seeds 2 --work work/curves/text-v1
	$(D2V) ablate budget --replot work/curves/text-v1/results.json --replot work/curves/text-v2/results.json --plot work/curves/text.png
