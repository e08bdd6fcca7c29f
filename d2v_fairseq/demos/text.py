"""The text demo (``make demo-text``): data2vec_text on real English nobody here wrote.

1. WordNet's glosses (Debian's ``wordnet-base``): all of them, less the held-out test
   definitions, are the unlabeled pre-training text; a sentencepiece BPE and fairseq's
   binarized masked_lm data are built from them;
2. pre-train a tiny data2vec_text (configs/text/pretraining/tiny_cpu.yaml);
3. a sentence-classification task from the same source: a definition -> its lexicographer
   category (10 categories), a small labeled train/valid split and a held-out test split;
4. fine-tune (examples/text/finetuning/tiny_cpu.yaml: fairseq's sentence_prediction, a
   classification head on the mean of the outputs) from the pre-trained model and, at the same budget, from
   random initialization, each with several seeds (``--seeds``);
5. print test accuracy and MCC of both (means over the seeds) and the accuracy of each seed.

    d2v demo text --work work/demo-text

Every stage reuses what an earlier run built.
"""

import functools
import os
import random
import time
from typing import Dict, List, Sequence

from ..data.text import binarize, encode_file, train_bpe
from ..evaluation import evaluate_text
from .common import finetune_seeds, hydra_train, print_seed_comparison, stage
from .wordnet import read_glosses

CATEGORIES = ("noun.animal", "noun.plant", "noun.food", "noun.artifact", "noun.person", "noun.body",
              "noun.location", "noun.substance", "verb.motion", "verb.communication")


def write_lines(path: str, lines: List[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def build_data(work: str, per_class: Dict[str, int], vocab_size: int, seed: int = 1) -> Dict[str, str]:
    """The pre-training corpus and the classification splits under ``work``; returns their dirs."""
    pre_bin, cls_bin = os.path.join(work, "pretrain-bin"), os.path.join(work, "cls-bin")
    if os.path.isfile(os.path.join(cls_bin, "label", "dict.txt")):
        print(f"  reusing {pre_bin} and {cls_bin}")
        return {"pretrain": pre_bin, "cls": cls_bin}
    raw = os.path.join(work, "raw")
    os.makedirs(raw, exist_ok=True)
    glosses = read_glosses()
    rng = random.Random(seed)
    by_category: Dict[str, List[str]] = {c: [] for c in CATEGORIES}
    for definition, _, category in glosses:
        if category in by_category and len(definition.split()) >= 3:
            by_category[category].append(definition)
    splits: Dict[str, List[tuple]] = {"train": [], "valid": [], "test": []}
    for category, definitions in by_category.items():
        rng.shuffle(definitions)
        start = 0
        for split in ("train", "valid", "test"):
            splits[split] += [(d, category) for d in definitions[start:start + per_class[split]]]
            start += per_class[split]
    held_out = {d for d, _ in splits["test"]}
    corpus = [g for d, g, _ in glosses if d not in held_out]
    rng.shuffle(corpus)
    write_lines(os.path.join(raw, "pretrain.train.txt"), corpus[:-1000])
    write_lines(os.path.join(raw, "pretrain.valid.txt"), corpus[-1000:])
    print(f"  pre-training text: {len(corpus)} glosses ({len(held_out)} test definitions left out)")
    os.makedirs(pre_bin, exist_ok=True)
    sp_model = train_bpe([os.path.join(raw, "pretrain.train.txt")], os.path.join(pre_bin, "sentencepiece.bpe"), vocab_size)
    for split in ("train", "valid"):
        encode_file(sp_model, os.path.join(raw, f"pretrain.{split}.txt"), os.path.join(raw, f"pretrain.{split}.bpe"))
    binarize(pre_bin, os.path.join(raw, "pretrain.train.bpe"), os.path.join(raw, "pretrain.valid.bpe"))
    # classification: input0 with the pre-training dictionary, labels with their own
    for split, rows in splits.items():
        rng.shuffle(rows)
        write_lines(os.path.join(raw, f"cls.{split}.txt"), [d for d, _ in rows])
        write_lines(os.path.join(raw, f"cls.{split}.label"), [c for _, c in rows])
        encode_file(sp_model, os.path.join(raw, f"cls.{split}.txt"), os.path.join(raw, f"cls.{split}.bpe"))
    print("  classification: " + ", ".join(f"{s} {len(r)}" for s, r in splits.items()) + f" over {len(CATEGORIES)} categories")
    for sub, suffix, srcdict in (("input0", "bpe", os.path.join(pre_bin, "dict.txt")), ("label", "label", None)):
        binarize(os.path.join(cls_bin, sub), os.path.join(raw, f"cls.train.{suffix}"),
                 os.path.join(raw, f"cls.valid.{suffix}"), srcdict=srcdict)
        # the test split as a second "valid" set, binarized with the same dictionary
        binarize(os.path.join(raw, f"test-{sub}"), os.path.join(raw, f"cls.test.{suffix}"),
                 srcdict=os.path.join(cls_bin, sub, "dict.txt"))
        for ext in ("bin", "idx"):
            os.replace(os.path.join(raw, f"test-{sub}", f"train.{ext}"), os.path.join(cls_bin, sub, f"test.{ext}"))
    return {"pretrain": pre_bin, "cls": cls_bin}


def run_demo(work: str = "work/demo-text", pretrain_updates: int = 800, finetune_updates: int = 400,
             train_per_class: int = 40, seeds: int = 3, vocab_size: int = 4000,
             pretrain_overrides: Sequence[str] = ()) -> Dict:
    """Runs the demo (see the module docstring) in ``work``; returns {starting point: scores
    per fine-tuning seed}."""
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    stage("1/4 WordNet glosses -> sentencepiece BPE -> binarized masked_lm data and classification splits")
    data = build_data(work, {"train": train_per_class, "valid": 20, "test": 100}, vocab_size)

    stage(f"2/4 data2vec_text pre-training, tiny model, {pretrain_updates} updates")
    pre_dir = os.path.join(work, "pretrain")
    hydra_train("pretraining", pre_dir, pretrain_updates, [f"task.data={data['pretrain']}", *pretrain_overrides],
                os.path.join(work, "pretrain.log"), modality="text")

    def finetune(restore: str, save_dir: str, log_path: str, seed: int) -> None:
        hydra_train("finetuning", save_dir, finetune_updates,
                    [f"task.data={data['cls']}", f"task.num_classes={len(CATEGORIES)}",
                     f"checkpoint.restore_file={restore}", f"lr_scheduler.total_num_update={finetune_updates}",
                     f"common.seed={seed}",
                     # the head reads the mean of the outputs: a tiny model's <s> output, which
                     # pre-training never regresses, carries little of the sentence
                     "model.classifier_pooling=mean",
                     "checkpoint.no_last_checkpoints=false"],
                    log_path, modality="text")

    starts = (("pretrained", os.path.join(pre_dir, "checkpoint_last.pt")), ("random init", "none.pt"))
    runs = {name: finetune_seeds(work, name, seeds, f"{finetune_updates} updates",
                                 functools.partial(finetune, restore),
                                 lambda checkpoint: evaluate_text(checkpoint, data["cls"], "test"))
            for name, restore in starts}

    stage(f"4/4 test set: definition -> WordNet category ({len(CATEGORIES)} classes, chance 10%); "
          f"{time.time() - start:.0f} s in all")
    print_seed_comparison(runs, [("accuracy", "accuracy", True), ("mcc", "MCC", False)], "accuracy",
                          f"{runs['pretrained'][0]['n']} test definitions, {train_per_class} labeled per class")
    return runs

