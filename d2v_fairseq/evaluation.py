"""Scoring any fine-tuned checkpoint of the package on labeled data, by what it predicts:

* CTC speech recognition (``wav2vec_ctc``): WER and CER with any decoder (``d2v_audio_ctc``'s
  viterbi or lexicon beam search with a KenLM);
* image classification (``data2vec_image_classification``, 2.0's ``mae_image_classification``): top-1 and top-5 accuracy, and
  top-1 per class, on a folder of CLASS/IMAGE files or an image manifest;
* audio tagging (``data2vec_audio_classification``): mAP (macro average precision over the
  classes present) and each class's AP;
* text classification (``sentence_prediction``): accuracy, Matthews correlation and, for two
  classes, F1; Pearson and Spearman correlation for a regression head (STS-B).

``evaluate(checkpoint, data, split)`` picks the metric from the checkpoint; ``d2v evaluate``
is its command line.
"""

import logging
import os
import tempfile
from typing import Dict, Optional

import numpy as np
import torch

from .data.classes import read_classes
from .data.images import ImageDataError, ImageFolderDataset, scan_split, write_manifest
from .hub import Transcriber, autocast, load_checkpoint, read_checkpoint
from .modules.errors import InputError
from .modules.metrics import average_precisions, matthews_correlation, top_k_correct

CTC_MODELS = ("wav2vec_ctc", "d2v_hubert_ctc")  # fairseq's CTC models of data2vec / wav2vec 2.0 and of HuBERT
# what each kind of checkpoint is scored on by default
DEFAULT_SPLITS = {"ctc": "test", "images": "val", "tags": "eval", "text": "test"}


def checkpoint_kind(cfg) -> str:
    """"ctc", "images", "tags" or "text" for a fine-tuned checkpoint's config; InputError else."""
    model, task = cfg.model.get("_name"), cfg.task.get("_name")
    if model in CTC_MODELS:
        return "ctc"
    if model in ("data2vec_image_classification", "mae_image_classification"):
        return "images"
    if model == "data2vec_audio_classification":
        return "tags"
    if task == "sentence_prediction":
        return "text"
    raise InputError(f"a {model} checkpoint (task {task}) is not a fine-tuned model to score: evaluate takes "
                     "CTC (wav2vec_ctc), image classification, audio tagging or sentence_prediction checkpoints")


@torch.no_grad()
def evaluate(checkpoint: str, data: str, split: Optional[str] = None, classes: Optional[str] = None,
             precision: str = "fp32", **decoder_args) -> Dict:
    """Scores ``checkpoint`` on ``split`` of ``data`` (see the module docstring); returns the
    metrics (percent where a rate) with ``kind``, ``split`` and ``n``. ``classes``: images'
    classes.txt; ``precision``: of the model's forward pass (fp32, bf16; fp16 on CUDA), scores in
    fp32; ``decoder_args``: the ``Transcriber``'s decoder options (CTC only)."""
    logging.getLogger("PIL").setLevel(logging.INFO)  # its per-chunk DEBUG lines would flood the output
    kind = checkpoint_kind(read_checkpoint(checkpoint)["cfg"])
    split = split or DEFAULT_SPLITS[kind]
    if kind == "ctc":
        scores = evaluate_ctc(checkpoint, data, split, precision=precision, **decoder_args)
    else:
        with autocast(precision, "cpu"):  # the forward passes; the metrics below read fp32
            if kind == "images":
                scores = evaluate_images(checkpoint, data, split, classes=classes)
            else:
                scores = {"tags": evaluate_tags, "text": evaluate_text}[kind](checkpoint, data, split)
    return {"kind": kind, "split": split, **scores}


@torch.no_grad()
def evaluate_ctc(checkpoint: str, data: str, split: str, precision: str = "fp32", **decoder_args) -> Dict:
    """WER and CER of a CTC model on DATA/SPLIT.tsv + .ltr with the given decoder."""
    _require(os.path.join(data, f"{split}.tsv"))
    asr = Transcriber(checkpoint, data_dir=data, precision=precision, **decoder_args)
    emissions, references = asr.subset_emissions(split)
    return asr.score(emissions, references)


@torch.no_grad()
def evaluate_images(checkpoint: str, data: str, split: str, classes: Optional[str] = None,
                    batch_size: int = 64) -> Dict:
    """Top-1 / top-5 accuracy of an image classifier. ``data``: a folder of CLASS/IMAGE files,
    a ``.tsv`` manifest, or a folder of manifests (then ``split`` picks ``SPLIT.tsv``); class
    folders are matched to labels through ``classes`` (default: beside the training manifests)."""
    model, cfg, task = load_checkpoint(checkpoint)
    model.eval()
    source = data
    if os.path.isdir(data) and os.path.isfile(os.path.join(data, f"{split}.tsv")):
        source = os.path.join(data, f"{split}.tsv")
    classes = classes or os.path.join(cfg.task.data, "classes.txt")
    names = read_classes(classes) if os.path.isfile(classes) else None
    with tempfile.TemporaryDirectory() as tmp:
        manifest = source
        if os.path.isdir(source):
            if names is None:
                raise ImageDataError(f"{classes}: missing; pass --classes to match {source}'s folders to labels")
            _, entries = scan_split(source, names)
            manifest = os.path.join(tmp, "eval.tsv")
            write_manifest(manifest, source, entries)
        _require(manifest)
        dataset = ImageFolderDataset(manifest, cfg.task.image_size, train=False, num_classes=task.num_classes())
        logits, labels = [], []
        for start in range(0, len(dataset), batch_size):
            batch = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            logits.append(model(**batch["net_input"]))
            labels.append(batch["label"])
    logits, labels = torch.cat(logits).float(), torch.cat(labels)
    top1_hit = logits.argmax(-1) == labels
    per_class = {(names[c] if names else str(c)): 100.0 * top1_hit[labels == c].float().mean().item()
                 for c in labels.unique().tolist()}
    n = labels.numel()
    return {"top1": 100.0 * top_k_correct(logits, labels, 1) / n, "top5": 100.0 * top_k_correct(logits, labels, 5) / n,
            "n": n, "per_class": per_class}


@torch.no_grad()
def evaluate_tags(checkpoint: str, data: str, split: str, max_tokens: int = 1_600_000) -> Dict:
    """mAP and per-class AP (percent) of an audio tagger on DATA/SPLIT.tsv + .lbl."""
    _require(os.path.join(data, f"{split}.tsv"))
    model, _, task = load_checkpoint(checkpoint, arg_overrides={"data": data})
    model.eval()
    task.load_dataset(split)
    batches = task.get_batch_iterator(task.dataset(split), max_tokens=max_tokens).next_epoch_itr(shuffle=False)
    scores, targets = [], []
    for sample in batches:
        scores.append(model(**sample["net_input"])["logits"].float().sigmoid().numpy())
        targets.append(sample["target"].numpy())
    scores, targets = np.concatenate(scores), np.concatenate(targets)
    classes_file = os.path.join(data, "classes.txt")
    names = read_classes(classes_file) if os.path.isfile(classes_file) else [str(i) for i in range(targets.shape[1])]
    ap = average_precisions(scores, targets)
    per_class = {names[c]: 100.0 * ap[c] for c in np.flatnonzero(np.isfinite(ap))}
    return {"mAP": float(np.mean(list(per_class.values()))), "per_class": per_class, "n": len(targets)}


@torch.no_grad()
def evaluate_text(checkpoint: str, data: str, split: str, max_sentences: int = 64) -> Dict:
    """Accuracy, MCC (and F1 for two classes) of a sentence classifier, or Pearson / Spearman
    of a regression head, on ``split`` of fairseq's sentence_prediction data (input0/, label/)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score

    model, cfg, task = load_checkpoint(checkpoint, arg_overrides={"data": data})
    model.eval()
    task.load_dataset(split)
    batches = task.get_batch_iterator(task.dataset(split), max_sentences=max_sentences).next_epoch_itr(shuffle=False)
    head = cfg.task.get("classification_head_name", "sentence_classification_head")
    outputs, gold = [], []
    for sample in batches:
        logits, _ = model(**sample["net_input"], features_only=True, classification_head_name=head)
        outputs.append(logits.float())
        gold.append(sample["target"].view(-1))
    outputs, gold = torch.cat(outputs), torch.cat(gold)
    if cfg.task.get("regression_target", False):
        pred, true = outputs.view(-1).numpy(), gold.float().numpy()
        return {"pearson": 100.0 * pearsonr(pred, true)[0], "spearman": 100.0 * spearmanr(pred, true)[0], "n": len(true)}
    predicted = outputs.argmax(-1)
    result = {"accuracy": 100.0 * (predicted == gold).float().mean().item(),
              "mcc": matthews_correlation(gold.tolist(), predicted.tolist()), "n": gold.numel()}
    if outputs.size(-1) == 2:
        result["f1"] = 100.0 * f1_score(gold.numpy(), predicted.numpy())
    return result


def _require(path: str) -> None:
    if not os.path.exists(path):
        raise InputError("not found", path=path)
