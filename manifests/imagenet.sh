#!/usr/bin/env bash
# ImageNet-1k -> what the vision recipes read.
#   manifests/imagenet.sh /data/imagenet /data/imagenet-manifests
# IMAGENET_ROOT holds train/CLASS/IMAGE and val/CLASS/IMAGE (the usual layout). Writes train.tsv,
# val.tsv and classes.txt. Recipes: vision/pretraining/base_imagenet.yaml, vision/finetuning/
# base_imagenet.yaml (task.data=OUT).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 IMAGENET_ROOT OUT_DIR" >&2; exit 2; }
exec d2v prepare images "$1" "$2" --splits train val
