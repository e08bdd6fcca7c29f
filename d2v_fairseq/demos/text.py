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

``--method data2vec2`` pre-trains data2vec 2.0 (configs/text/pretraining/v2_tiny_cpu.yaml, the
same 4 blocks of 64 dims) beside v1, each timed, fine-tunes each (2.0 with
finetuning/v2_tiny_cpu.yaml, the head on the mean of the outputs as v1's) and random init, and
prints one table: rows data2vec 2.0, data2vec (v1), random init; accuracy, MCC and the seconds
of pre-training.

Every stage reuses what an earlier run built.
"""

import functools
import os
import random
import time
from typing import Dict, List, Sequence

from ..data.text import binarize, encode_file, train_bpe
from ..evaluation import evaluate_text
from .common import finetune_seeds, hydra_train, print_seed_comparison, stage, timed_pretraining
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
             pretrain_overrides: Sequence[str] = (), method: str = "data2vec", v2_pretrain_updates: int = 400) -> Dict:
    """Runs the demo (see the module docstring) in ``work``; returns {starting point: scores
    per fine-tuning seed}."""
    if method not in ("data2vec", "data2vec2"):
        raise ValueError(f"--method {method}: data2vec or data2vec2")
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    stage("1/4 WordNet glosses -> sentencepiece BPE -> binarized masked_lm data and classification splits")
    data = build_data(work, {"train": train_per_class, "valid": 20, "test": 100}, vocab_size)

    # (row, pre-training config, updates, folder)
    methods = [("pretrained", "tiny_cpu", pretrain_updates, "pretrain")]
    if method == "data2vec2":
        methods = [("data2vec 2.0", "v2_tiny_cpu", v2_pretrain_updates, f"pretrain_v2_{v2_pretrain_updates}"),
                   ("data2vec (v1)", "tiny_cpu", pretrain_updates, "pretrain")]
    seconds = {}
    for name, config, updates, folder in methods:
        label = "data2vec 2.0" if config.startswith("v2") else "data2vec_text"
        stage(f"2/4 {label} pre-training, tiny model, {updates} updates")
        seconds[name] = timed_pretraining(os.path.join(work, folder), updates,
                                          [f"task.data={data['pretrain']}", *pretrain_overrides],
                                          os.path.join(work, f"{folder}.log"), "text", config)

    def finetune(restore: str, v2: bool, save_dir: str, log_path: str, seed: int) -> None:
        common = [f"task.data={data['cls']}", f"task.num_classes={len(CATEGORIES)}",
                  f"lr_scheduler.total_num_update={finetune_updates}", f"common.seed={seed}",
                  # the head reads the mean of the outputs: a tiny model's <s> output, which
                  # pre-training never regresses, carries little of the sentence
                  "model.classifier_pooling=mean", "checkpoint.no_last_checkpoints=false"]
        start_from = [f"model.model_path={restore}"] if v2 else [f"checkpoint.restore_file={restore}"]
        hydra_train("finetuning", save_dir, finetune_updates, common + start_from, log_path, modality="text",
                    config_name="v2_tiny_cpu" if v2 else "tiny_cpu")

    starts = [(name if method == "data2vec2" else "pretrained", os.path.join(work, folder, "checkpoint_last.pt"),
               config.startswith("v2")) for name, config, _, folder in methods]
    starts.append(("random init", "none.pt", False))
    runs = {}
    for name, restore, v2 in starts:
        tag = {"data2vec 2.0": f"v2_{v2_pretrain_updates}", "data2vec (v1)": "pretrained"}.get(name, name)
        runs[name] = finetune_seeds(work, tag, seeds, f"{finetune_updates} updates",
                                    functools.partial(finetune, restore, v2),
                                    lambda checkpoint: evaluate_text(checkpoint, data["cls"], "test"))
        for scores in runs[name]:
            scores["pretrain_s"] = seconds.get(name, 0.0)

    stage(f"4/4 test set: definition -> WordNet category ({len(CATEGORIES)} classes, chance 10%); "
          f"{time.time() - start:.0f} s in all")
    columns = [("accuracy", "accuracy", True), ("mcc", "MCC", False)]
    if method == "data2vec2":
        columns.append(("pretrain_s", "pre-train s", ".0f"))
    print_seed_comparison(runs, columns, "accuracy",
                          f"{runs['random init'][0]['n']} test definitions, "
                          f"{train_per_class} labeled per class")
    if method == "data2vec2":
        v1, v2 = runs["data2vec (v1)"], runs["data2vec 2.0"]
        acc = {k: sum(r["accuracy"] for r in v) / len(v) for k, v in (("v1", v1), ("v2", v2))}
        print(f"data2vec 2.0: accuracy {acc['v2']:.1f}% after {seconds['data2vec 2.0']:.0f} s of pre-training "
              f"({v2_pretrain_updates} updates); v1: {acc['v1']:.1f}% after {seconds['data2vec (v1)']:.0f} s "
              f"({pretrain_updates} updates)")
    return runs
