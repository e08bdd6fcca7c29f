"""The speech pipeline on a user's own corpus (``d2v demo speech --corpus TABLE``):

1. import the corpus (``d2v prepare speech``: 16 kHz FLAC, normalized transcripts, splits by
   ``--group-column``, letter dictionary, word 3-gram LM and lexicon); rows the importer would
   stop on are left out and counted per reason, as ``--skip-bad`` does;
2. pre-train a small data2vec_audio on all of the training split's audio, without labels;
3. CTC fine-tune on the training split (or ``--labeled-minutes`` of it) from the pre-trained
   model and, at the same budget and architecture, from random initialization;
   the budgets of 2 and 3 follow the corpus (``data.speech_plan.choose_budget``: passes over
   the audio, updates per letter of the alphabet) unless given; fine-tuning stops early when
   the valid UER has not improved for ``patience`` validations. Pre-training runs its budget:
   its valid loss is measured against targets that move with the teacher, and rises while the
   model improves (on Czech: 1.13, 1.77, 2.09 at updates 500, 1,000, 1,500), so it cannot say
   when to stop;
4. tune the LM weight and word score of each on the validation split, then decode the test
   split with viterbi and with the LM (lexicon beam search);
5. print one row per starting point with WER and CER of each decoder.

Before any training, every constraint of the stages is checked against the corpus
(``data.speech_plan``: the front end's receptive field, CTC lengths, batch limits and crops
follow the longest utterance, or ``--max-seconds``) and what is left out is counted. ``--init
CKPT`` (repeatable) fine-tunes from given pre-trained checkpoints instead of pre-training. A
stage that fails ends the demo with one line naming it, its cause and its log; a re-run resumes
from the last finished stage (training resumes, finished decodes are reused).

The recipe (``configs/audio/{pretraining,finetuning}/real_cpu.yaml``) is sized for recorded
speech on a CPU; see docs/speech.md for what it was tuned on.
"""

import json
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ..data.corpus import TextOptions, format_summary, import_corpus, labeled_subset
from ..data.speech_plan import VALIDATE_EVERY, choose_budget, format_plan, plan_stages
from ..environment import config_root
from ..launch import load_config, override_key
from ..evaluation import evaluate_ctc
from ..hub import read_checkpoint, tune_lm
from ..modules.errors import InputError
from .common import hydra_train, print_comparison, stage, trained_updates

LM_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
WORD_SCORES = (-1.0, 0.0, 1.0)
SPEECH_MODELS = ("data2vec_audio", "data2vec2_audio", "data2vec_multi", "wav2vec2")


def recipe_config(group: str, name: str, overrides: Sequence[str]) -> dict:
    """The installed audio/GROUP/NAME.yaml with hydra-style ``overrides`` applied, as a dict."""
    return load_config(os.path.join(config_root(), "audio", group, f"{name}.yaml"), overrides)


def plan_corpus(data: str, pretraining: str = "real_cpu", finetuning: str = "real_cpu",
                pretrain_overrides: Sequence[str] = (), finetune_overrides: Sequence[str] = (),
                max_seconds: Optional[float] = None, front_end: Optional[str] = None):
    """``plan_stages`` of a prepared corpus against the installed audio recipes (printed and
    written to DATA/plan.json); returns the plan."""
    pre_cfg = recipe_config("pretraining", pretraining, pretrain_overrides)
    ft_cfg = recipe_config("finetuning", finetuning, finetune_overrides)
    plan = plan_stages(data, pre_cfg, ft_cfg, max_seconds, front_end=front_end)
    print(f"checked against the recipes audio/pretraining/{pretraining}.yaml and audio/finetuning/{finetuning}.yaml:")
    print(format_plan(plan), flush=True)
    with open(os.path.join(data, "plan.json"), "w", encoding="utf-8") as f:
        json.dump(plan.summary(), f, indent=1)
    return plan


def check_init(path: str) -> Tuple[str, str]:
    """(row name, conv_feature_layers) of a pre-trained speech checkpoint given to ``--init``;
    InputError naming the file when it is missing or not a speech model."""
    if not os.path.isfile(path):
        raise InputError("no such checkpoint (--init)", path=path)
    cfg = read_checkpoint(path)["cfg"]
    model = cfg["model"]
    name = model.get("_name")
    if name not in SPEECH_MODELS:
        raise InputError(f"--init: a {name} checkpoint is not a pre-trained speech model (expected one of "
                         f"{', '.join(SPEECH_MODELS)})", path=path)
    front_end = model.get("conv_feature_layers")
    if front_end is None and "modalities" in model:  # data2vec 2.0's multi-modal layout
        front_end = model["modalities"]["audio"].get("feature_encoder_spec")
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return f"from {parent}/{os.path.basename(path)}", front_end


def run_corpus_demo(corpus: str, work: str = "work/demo-own-speech", group_column: Optional[str] = None,
                    labeled_minutes: Optional[float] = None, pretrain_updates: Optional[int] = None,
                    finetune_updates: Optional[int] = None, patience: Optional[int] = None,
                    path_column: str = "path", text_column: str = "text",
                    pretraining: str = "real_cpu", finetuning: str = "real_cpu",
                    pretrain_overrides: Sequence[str] = (), finetune_overrides: Sequence[str] = (),
                    inits: Sequence[str] = (), max_seconds: Optional[float] = None,
                    keep_scripts: Optional[Sequence[str]] = None, split_column: Optional[str] = None) -> Dict:
    """Runs the pipeline (see the module docstring) in ``work``; returns {starting point:
    {"viterbi": {"wer", "cer"}, "lm": {"wer", "cer", "lm_weight", "word_score"}, "valid_uer",
    "updates"}}. Budgets not given come from the corpus (``choose_budget``). With
    ``inits`` (pre-trained speech checkpoints) fine-tuning starts from each of them instead of
    pre-training here; random init takes the first one's architecture."""
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    start = time.time()
    starts: List[Tuple[str, str]] = []
    front_end = None
    for path in inits:  # checked before anything runs
        name, spec = check_init(path)
        starts.append((name, os.path.abspath(path)))
        front_end = front_end or spec

    stage(f"1/5 importing {corpus}")
    data = os.path.join(work, "data")
    result = import_corpus(corpus, data, path_column, text_column, split_column=split_column,
                           group_column=group_column, skip_bad=True,
                           text=TextOptions("upper"), keep_scripts=keep_scripts)
    print(format_summary(result.summary()), flush=True)
    # every constraint of the stages, settled before the first update
    plan = plan_corpus(data, pretraining, finetuning, pretrain_overrides, finetune_overrides, max_seconds, front_end)
    train_subset = plan.subsets["train"]
    if labeled_minutes:
        train_subset = labeled_subset(data, labeled_minutes, split=train_subset)
    test_subset = plan.subsets["test"]
    budget = choose_budget(plan)
    pretrain_updates = pretrain_updates or budget.pretrain_updates
    finetune_updates = finetune_updates or budget.finetune_updates
    patience = budget.patience if patience is None else patience
    stopping = [f"checkpoint.patience={patience}", f"dataset.validate_interval_updates={VALIDATE_EVERY}",
                f"checkpoint.save_interval_updates={VALIDATE_EVERY}"] if patience > 0 else []
    given = {override_key(o.lstrip("~")) for o in finetune_overrides}
    stopping = [o for o in stopping if override_key(o) not in given]  # the user's overrides win
    print("budgets from the corpus: " + "; ".join(budget.reasons))
    print(f"  this run: pre-training {pretrain_updates}, fine-tuning {finetune_updates} updates at most, "
          + (f"fine-tuning patience {patience} validations" if patience > 0 else "no early stopping"))
    print(f"  {time.time() - start:.0f} s")

    if not starts:
        stage(f"2/5 data2vec pre-training on the training audio (no labels), at most {pretrain_updates} updates")
        pre_dir = os.path.join(work, "pretrain")
        hydra_train("pretraining", pre_dir, pretrain_updates,
                    [f"task.data={data}", "dataset.train_subset=pretrain", "dataset.valid_subset=valid",
                     *pretrain_overrides], os.path.join(work, "pretrain.log"), config_name=pretraining,
                    what="pre-training")
        starts.append(("pretrained", os.path.join(pre_dir, "checkpoint_last.pt")))
    else:
        stage("2/5 no pre-training here: fine-tuning starts from " + ", ".join(p for _, p in starts))

    labeled = f"{labeled_minutes:g} minutes of" if labeled_minutes else "all of"
    scores: Dict[str, Dict] = {}
    runs = [(name, path, []) for name, path in starts]
    runs.append(("random init", starts[0][1], ["+model.no_pretrained_weights=true"]))
    for i, (name, checkpoint, extra) in enumerate(runs):
        stage(f"3/5 CTC fine-tuning {name if name.startswith('from') else 'from ' + name} on {labeled} the "
              f"training split, at most {finetune_updates} updates")
        tag = "random_init" if name == "random init" else ("pretrained" if name == "pretrained" else f"init{i + 1}")
        ft_dir = os.path.join(work, f"finetune_{tag}")
        hydra_train("finetuning", ft_dir, finetune_updates,
                    [f"task.data={data}", f"model.w2v_path={checkpoint}", f"dataset.train_subset={train_subset}",
                     f"dataset.valid_subset={plan.subsets['valid']}", *plan.finetune_overrides, *stopping, *extra,
                     *finetune_overrides],
                    os.path.join(work, f"finetune_{tag}.log"), config_name=finetuning, what=f"fine-tuning {name}")
        stage(f"4/5 decoding the test split: {name}")
        scores[name] = decode_test(os.path.join(ft_dir, "checkpoint_best.pt"), data, test_subset, plan.subsets["valid"])
        scores[name]["valid_uer"] = best_valid(os.path.join(ft_dir, "checkpoint_best.pt"))
        scores[name]["updates"] = trained_updates(ft_dir)

    n_test = plan.durations.get("test", {}).get("utterances", len(result.splits["test"]))
    stage(f"5/5 test split ({n_test} utterances); {time.time() - start:.0f} s in all")
    table = {name: {"v_wer": s["viterbi"]["wer"], "v_cer": s["viterbi"]["cer"], "lm_wer": s["lm"]["wer"],
                    "lm_cer": s["lm"]["cer"], "valid_uer": s["valid_uer"], "updates": s["updates"]}
             for name, s in scores.items()}
    failed = not_learned({name: s["valid_uer"] for name, s in scores.items()},
                         {name: s["updates"] for name, s in scores.items()})
    print_comparison(table, [("v_wer", "viterbi WER", True), ("v_cer", "viterbi CER", True),
                             ("lm_wer", "LM WER", True), ("lm_cer", "LM CER", True),
                             ("valid_uer", "valid UER", True), ("updates", "CTC updates", "d")], "v_cer",
                     f"{n_test} test utterances", lower_is_better=True, not_learned=failed)
    with open(os.path.join(work, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"corpus": result.summary(), "plan": plan.summary(), "inits": dict(starts) if inits else {},
                   "budget": {"pretrain_updates": pretrain_updates, "finetune_updates": finetune_updates,
                              "patience": patience, "reasons": budget.reasons},
                   "scores": scores, "seconds": time.time() - start}, f, indent=1)
    return scores


# a fine-tuned model whose best validation unit (letter) error rate stays above this has not
# learned to transcribe: its test scores compare nothing
NOT_LEARNED_UER = 90.0


def best_valid(checkpoint: str) -> Optional[float]:
    """The best validation UER a fine-tuning checkpoint records, when its recipe picks the best
    checkpoint by UER (``checkpoint.best_checkpoint_metric: uer``, the real-speech recipe); None
    otherwise."""
    from ..checkpoints import read_state

    state = read_state(checkpoint) or {}
    metric = ((state.get("cfg") or {}).get("checkpoint") or {}).get("best_checkpoint_metric")
    best = (state.get("extra_state") or {}).get("best")
    return float(best) if metric == "uer" and best is not None else None


def not_learned(valid_uer: Dict[str, Optional[float]], updates: Dict[str, int],
                limit: float = NOT_LEARNED_UER) -> Dict[str, str]:
    """Starting points whose fine-tuned model did not learn (best valid UER above ``limit``; None:
    not known, no verdict) -> why (with the CTC updates it ran), with what to try."""
    return {name: (f"best valid UER {uer:.1f} > {limit:g} after {updates.get(name, '?')} CTC updates; try more CTC "
                   "updates (--finetune-updates), another learning rate (--finetune-overrides "
                   "optimization.lr=[...]), more labeled audio, or check that the transcripts match the audio")
            for name, uer in valid_uer.items() if uer is not None and uer > limit}


def decode_test(checkpoint: str, data: str, test: str = "test", valid: str = "valid") -> Dict[str, Dict[str, float]]:
    """Viterbi scores on ``test``; the LM weight and word score tuned on valid, then the LM's
    test scores. Kept beside the checkpoint: a re-run with the same checkpoint decodes nothing."""
    cache = os.path.join(os.path.dirname(checkpoint), f"scores-{test}.json")
    if os.path.isfile(cache) and os.path.getmtime(cache) > os.path.getmtime(checkpoint):
        with open(cache) as f:
            scores = json.load(f)
        print(f"  reusing {cache}")
        return scores
    lm, lexicon = os.path.join(data, "lm", "lm.arpa"), os.path.join(data, "lm", "lexicon.txt")
    viterbi = evaluate_ctc(checkpoint, data, test, decoder="viterbi")
    grid = tune_lm(checkpoint, data, valid, lm, lexicon, beam=50, lm_weights=LM_WEIGHTS, word_scores=WORD_SCORES,
                   report=lambda line: None)
    _, lm_weight, word_score = grid[0]
    with_lm = evaluate_ctc(checkpoint, data, test, decoder="lexicon_beam", lm=lm, lexicon=lexicon, beam=50,
                           lm_weight=lm_weight, word_score=word_score)
    print(f"  viterbi: WER {viterbi['wer']:.1f} CER {viterbi['cer']:.1f}; LM (weight {lm_weight}, word score "
          f"{word_score}, tuned on valid): WER {with_lm['wer']:.1f} CER {with_lm['cer']:.1f}", flush=True)
    scores = {"viterbi": viterbi, "lm": {**with_lm, "lm_weight": lm_weight, "word_score": word_score}}
    with open(cache, "w") as f:
        json.dump(scores, f, indent=1)
    return scores
