"""mAP of a fine-tuned audio tagger on a manifest, with the classes it tags best.

    python -m d2v_fairseq.tag CHECKPOINT DATA_DIR [--split eval] [--top 10] [--per-class FILE]

DATA_DIR holds SPLIT.tsv, SPLIT.lbl and classes.txt (``manifests/audioset.py``). Prints mAP
(macro average precision over the classes present, as scikit-learn computes it) and the top
classes by AP; ``--per-class`` writes every class's AP (tab-separated, best first).
"""

import argparse
import logging
import os
from typing import Dict

import numpy as np
import torch


@torch.no_grad()
def evaluate(checkpoint: str, data: str, split: str = "eval", max_tokens: int = 1_600_000) -> Dict:
    """{"mAP" (percent), "per_class": {name: AP percent}, "n"} of ``checkpoint`` on ``split``."""
    from sklearn.metrics import average_precision_score

    from .checkpoint import load_pretrained
    from .data.classes import read_classes

    logging.getLogger("PIL").setLevel(logging.INFO)
    model, _, task = load_pretrained(checkpoint, arg_overrides={"data": data})
    model.eval()
    task.load_dataset(split)
    batches = task.get_batch_iterator(task.dataset(split), max_tokens=max_tokens).next_epoch_itr(shuffle=False)
    scores, targets = [], []
    for sample in batches:
        out = model(**sample["net_input"])
        scores.append(out["logits"].float().sigmoid().numpy())
        targets.append(sample["target"].numpy())
    scores, targets = np.concatenate(scores), np.concatenate(targets)
    classes_file = os.path.join(data, "classes.txt")
    names = read_classes(classes_file) if os.path.isfile(classes_file) else [str(i) for i in range(targets.shape[1])]
    present = np.flatnonzero(targets.sum(0) > 0)
    per_class = {names[c]: 100.0 * average_precision_score(targets[:, c], scores[:, c]) for c in present}
    return {"mAP": float(np.mean(list(per_class.values()))), "per_class": per_class, "n": len(targets)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--split", default="eval")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--per-class", help="write every class's AP here")
    args = parser.parse_args()
    result = evaluate(args.checkpoint, args.data, args.split)
    ranked = sorted(result["per_class"].items(), key=lambda kv: -kv[1])
    print(f"{args.split}: {result['n']} clips, {len(ranked)} classes present, mAP {result['mAP']:.2f}")
    for name, ap in ranked[: args.top]:
        print(f"  AP {ap:6.2f}  {name}")
    if args.per_class:
        with open(args.per_class, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\t{ap:.4f}\n" for name, ap in ranked))


if __name__ == "__main__":
    main()
