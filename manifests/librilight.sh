#!/usr/bin/env bash
# Libri-light's limited-resource fine-tuning splits (librispeech_finetuning/) -> the paper's
# 10 min, 1 h and 10 h labeled sets, beside LibriSpeech's dev/test manifests.
#   manifests/librilight.sh /data/librispeech_finetuning /data/LibriSpeech /data/ll-manifests
# Writes OUT/{train_10m,train_1h,train_10h}.tsv/.wrd/.ltr (10 min = 1h/0; 1 h = 1h/0..5;
# 10 h = 1 h + 9h), dev-other/dev-clean/test-* from LibriSpeech, and dict.ltr.txt. Recipes:
# audio/finetuning/base_10m.yaml, base_1h.yaml, base_10h.yaml (task.data=OUT, with
# dataset.train_subset=train_10m / train_1h / train_10h).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 LIBRISPEECH_FINETUNING_ROOT LIBRISPEECH_ROOT OUT_DIR" >&2; exit 2; }
ft=$(cd "$1" && pwd); ls_root=$2; out=$(mkdir -p "$3" && cd "$3" && pwd)
# one flat folder of links, each Libri-light part a LibriSpeech-style subset
links="$out/.parts"; mkdir -p "$links"
parts_1h=()
for i in 0 1 2 3 4 5; do for kind in clean other; do
  ln -sfn "$ft/1h/$i/$kind" "$links/train-1h-$i-$kind"; parts_1h+=("train-1h-$i-$kind")
done; done
parts_9h=()
for kind in clean other; do ln -sfn "$ft/9h/$kind" "$links/train-9h-$kind"; parts_9h+=("train-9h-$kind"); done
d2v prepare librispeech "$links" "$out/.parts-manifests" --subsets "${parts_1h[@]}" "${parts_9h[@]}"
join() {  # join NAME PART...: one manifest (and labels) of several parts
  local name=$1; shift
  head -n1 "$out/.parts-manifests/$1.tsv" > "$out/$name.tsv"
  : > "$out/$name.wrd"; : > "$out/$name.ltr"
  for part in "$@"; do
    tail -n +2 "$out/.parts-manifests/$part.tsv" >> "$out/$name.tsv"
    cat "$out/.parts-manifests/$part.wrd" >> "$out/$name.wrd"
    cat "$out/.parts-manifests/$part.ltr" >> "$out/$name.ltr"
  done
}
join train_10m train-1h-0-clean train-1h-0-other
join train_1h "${parts_1h[@]}"
join train_10h "${parts_1h[@]}" "${parts_9h[@]}"
d2v prepare librispeech "$ls_root" "$out" --subsets dev-clean dev-other test-clean test-other
cp "$out/.parts-manifests/dict.ltr.txt" "$out/dict.ltr.txt"  # the letters of the labeled data
echo "wrote $out/train_10m, train_1h, train_10h (.tsv/.wrd/.ltr), dev and test manifests, dict.ltr.txt"
