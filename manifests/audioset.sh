#!/usr/bin/env bash
# AudioSet -> what the audio-events recipes read (the paper's AudioSet pre-training and tagging).
#   manifests/audioset.sh /data/audioset /data/audioset-manifests
# AUDIOSET_DIR holds the official CSVs (balanced_train_segments.csv, unbalanced_train_segments.csv,
# eval_segments.csv, class_labels_indices.csv) and one folder of 16 kHz mono clips per split.
# Writes SPLIT.tsv, SPLIT.lbl and classes.txt. Recipes: audio/pretraining/base_audioset.yaml,
# audio/classification/base_audioset.yaml.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 AUDIOSET_DIR OUT_DIR" >&2; exit 2; }
exec d2v prepare audioset "$1" "$2" --splits unbalanced_train balanced_train eval
