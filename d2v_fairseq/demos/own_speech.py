"""The speech pipeline on a user's own corpus (``d2v demo speech --corpus TABLE``):

1. import the corpus (``d2v prepare speech``: 16 kHz FLAC, normalized transcripts, splits by
   ``--group-column``, letter dictionary, word 3-gram LM and lexicon); rows the importer would
   stop on are left out and counted per reason, as ``--skip-bad`` does;
2. pre-train a small data2vec_audio on all of the training split's audio, without labels;
3. CTC fine-tune on the training split (or ``--labeled-minutes`` of it) from the pre-trained
   model and, at the same budget and architecture, from random initialization;
4. tune the LM weight and word score of each on the validation split, then decode the test
   split with viterbi and with the LM (lexicon beam search);
5. print one row per starting point with WER and CER of each decoder.

The recipe (``configs/audio/{pretraining,finetuning}/real_cpu.yaml``) is sized for recorded
speech on a CPU; see docs/speech.md for what it was tuned on.
"""

import json
import os
import time
from typing import Dict, Optional, Sequence

from ..data.corpus import TextOptions, format_summary, import_corpus, labeled_subset
from ..evaluation import evaluate_ctc
from ..hub import tune_lm
from .common import hydra_train, print_comparison, stage

LM_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
WORD_SCORES = (-1.0, 0.0, 1.0)


def run_corpus_demo(corpus: str, work: str = "work/demo-own-speech", group_column: Optional[str] = None,
                    labeled_minutes: Optional[float] = None, pretrain_updates: int = 1500,
                    finetune_updates: int = 2000, path_column: str = "path", text_column: str = "text",
                    pretraining: str = "real_cpu", finetuning: str = "real_cpu",
                    pretrain_overrides: Sequence[str] = (), finetune_overrides: Sequence[str] = ()) -> Dict:
    """Runs the pipeline (see the module docstring) in ``work``; returns {starting point:
    {"viterbi": {"wer", "cer"}, "lm": {"wer", "cer", "lm_weight", "word_score"}}}."""
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    stage(f"1/5 importing {corpus}")
    data = os.path.join(work, "data")
    result = import_corpus(corpus, data, path_column, text_column, group_column=group_column, skip_bad=True,
                           text=TextOptions("upper"))
    print(format_summary(result.summary()), flush=True)
    train_subset = labeled_subset(data, labeled_minutes) if labeled_minutes else "train"
    print(f"  {time.time() - start:.0f} s")

    stage(f"2/5 data2vec pre-training on the training audio (no labels), {pretrain_updates} updates")
    pre_dir = os.path.join(work, "pretrain")
    hydra_train("pretraining", pre_dir, pretrain_updates,
                [f"task.data={data}", "dataset.train_subset=pretrain", "dataset.valid_subset=valid",
                 *pretrain_overrides], os.path.join(work, "pretrain.log"), config_name=pretraining)
    pretrained = os.path.join(pre_dir, "checkpoint_last.pt")

    labeled = f"{labeled_minutes:g} minutes of" if labeled_minutes else "all of"
    scores: Dict[str, Dict] = {}
    for name, extra in (("pretrained", []), ("random init", ["+model.no_pretrained_weights=true"])):
        stage(f"3/5 CTC fine-tuning from {name} on {labeled} the training split, {finetune_updates} updates")
        tag = name.replace(" ", "_")
        ft_dir = os.path.join(work, f"finetune_{tag}")
        hydra_train("finetuning", ft_dir, finetune_updates,
                    [f"task.data={data}", f"model.w2v_path={pretrained}", f"dataset.train_subset={train_subset}",
                     "dataset.valid_subset=valid", *extra, *finetune_overrides],
                    os.path.join(work, f"finetune_{tag}.log"), config_name=finetuning)
        stage(f"4/5 decoding the test split: {name}")
        scores[name] = decode_test(os.path.join(ft_dir, "checkpoint_best.pt"), data)

    stage(f"5/5 test split ({len(result.splits['test'])} utterances); {time.time() - start:.0f} s in all")
    table = {name: {"v_wer": s["viterbi"]["wer"], "v_cer": s["viterbi"]["cer"], "lm_wer": s["lm"]["wer"],
                    "lm_cer": s["lm"]["cer"]} for name, s in scores.items()}
    print_comparison(table, [("v_wer", "viterbi WER", True), ("v_cer", "viterbi CER", True),
                             ("lm_wer", "LM WER", True), ("lm_cer", "LM CER", True)], "v_cer",
                     f"{len(result.splits['test'])} test utterances", lower_is_better=True)
    with open(os.path.join(work, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"corpus": result.summary(), "scores": scores, "seconds": time.time() - start}, f, indent=1)
    return scores


def decode_test(checkpoint: str, data: str) -> Dict[str, Dict[str, float]]:
    """Viterbi scores on test; the LM weight and word score tuned on valid, then the LM's test scores."""
    lm, lexicon = os.path.join(data, "lm", "lm.arpa"), os.path.join(data, "lm", "lexicon.txt")
    viterbi = evaluate_ctc(checkpoint, data, "test", decoder="viterbi")
    grid = tune_lm(checkpoint, data, "valid", lm, lexicon, beam=50, lm_weights=LM_WEIGHTS, word_scores=WORD_SCORES,
                   report=lambda line: None)
    _, lm_weight, word_score = grid[0]
    with_lm = evaluate_ctc(checkpoint, data, "test", decoder="lexicon_beam", lm=lm, lexicon=lexicon, beam=50,
                           lm_weight=lm_weight, word_score=word_score)
    print(f"  viterbi: WER {viterbi['wer']:.1f} CER {viterbi['cer']:.1f}; LM (weight {lm_weight}, word score "
          f"{word_score}, tuned on valid): WER {with_lm['wer']:.1f} CER {with_lm['cer']:.1f}", flush=True)
    return {"viterbi": viterbi, "lm": {**with_lm, "lm_weight": lm_weight, "word_score": word_score}}
