#!/usr/bin/env bash
# GLUE -> binarized sentence_prediction data with the pre-training model's BPE and dictionary.
#   manifests/glue.sh /data/glue /data/text-bin /data/glue-bin
# GLUE_DIR holds CoLA/, SST-2/, MRPC/, STS-B/, QQP/, MNLI/, QNLI/, RTE/ as distributed. TEXT_BIN
# is the pre-training data (manifests/text-corpus.sh): its sentencepiece model and dict.txt.
# Writes OUT/TASK-bin/. Recipes: text/finetuning/TASK.yaml (task.data=OUT/TASK-bin).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 GLUE_DIR TEXT_BIN OUT_DIR" >&2; exit 2; }
exec d2v prepare glue "$1" "$3" --sp-model "$2/sentencepiece.bpe.model" --dict "$2/dict.txt"
