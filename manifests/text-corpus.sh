#!/usr/bin/env bash
# A text corpus (the paper: Books Corpus + English Wikipedia, as RoBERTa) -> binarized masked_lm data.
#   manifests/text-corpus.sh corpus.train.txt corpus.valid.txt /data/text-bin
# One sentence or paragraph per line, UTF-8. Writes a sentencepiece BPE (sentencepiece.bpe.model,
# 50k pieces as the paper's vocabulary), dict.txt and train/valid .bin/.idx. Recipes:
# text/pretraining/base.yaml, large.yaml (task.data=OUT).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 TRAIN_TXT VALID_TXT OUT_DIR" >&2; exit 2; }
exec d2v prepare text "$3" --train "$1" --valid "$2" --vocab-size "${VOCAB_SIZE:-50000}"
