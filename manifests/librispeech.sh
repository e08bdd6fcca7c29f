#!/usr/bin/env bash
# LibriSpeech 960 h -> what the speech pre-training and fine-tuning recipes read.
#   manifests/librispeech.sh /data/LibriSpeech /data/ls-manifests
# Writes, for each of the paper's subsets found (train-clean-100, train-clean-360, train-other-500,
# dev-clean, dev-other, test-clean, test-other): SUBSET.tsv/.wrd/.ltr; train.tsv (all 960 h, for
# pre-training), valid.tsv, dict.ltr.txt. Recipes: audio/pretraining/base_librispeech.yaml
# (task.data=OUT), audio/finetuning/base_960h.yaml.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 LIBRISPEECH_ROOT OUT_DIR" >&2; exit 2; }
exec d2v prepare librispeech "$1" "$2"
