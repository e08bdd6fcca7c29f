"""The main job on the built-in demo corpus (``make demo``), the whole speech pipeline:

1. synthesize the demo spoken corpus with espeak-ng;
2. pre-train a tiny data2vec_audio model (configs/audio/pretraining/tiny_cpu.yaml);
3. fine-tune it with CTC on letters (configs/audio/finetuning/tiny_cpu.yaml), and, with the
   same budget, the same architecture from random initialization (the baseline);
4. build a word 3-gram LM (ARPA, modified Kneser-Ney) and a lexicon from the training text;
5. decode the test set with fairseq-generate, viterbi and lexicon beam search + KenLM;
6. print a WER table with the decoding real-time factors.

    d2v demo speech --work work/demo

Every stage reuses what an earlier run built (fairseq resumes from checkpoint_last.pt).
"""

import os
import re
import sys
import time
from typing import Dict, List

from ..decoding.lm import KneserNeyLM, read_sentences, write_lexicon
from .common import PACKAGE, hydra_train, run, stage
from .speech_corpus import build_corpus

def decode(corpus: str, checkpoint: str, out_dir: str, decoder_args: List[str]) -> Dict[str, float]:
    """fairseq-generate on the test set; returns {"wer", "rtf"} (cached beside the results)."""
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, "generate.log")
    if os.path.isfile(log_path) and os.path.getmtime(log_path) > os.path.getmtime(checkpoint):
        output = open(log_path).read()
        print(f"  reusing {log_path}")
    else:
        cmd = [sys.executable, "-m", "fairseq_cli.generate", corpus, "--user-dir", PACKAGE, "--task", "d2v_audio_ctc",
               "--path", checkpoint, "--gen-subset", "test", "--scoring", "wer", "--post-process", "letter",
               "--labels", "ltr", "--results-path", out_dir, "--max-tokens", "1000000", "--cpu", *decoder_args]
        output = run(cmd, log_path + ".tmp", show=())
        os.replace(log_path + ".tmp", log_path)
    with open(os.path.join(out_dir, "generate-test.txt")) as f:  # fairseq writes the WER line there
        wer = float(re.findall(r"WER: ([\d.]+)", f.read())[-1])
    rtf = float(re.findall(r"real-time factor so far: ([\d.]+)", output)[-1])
    return {"wer": wer, "rtf": rtf}


def demo_decoders(corpus: str, lm_dir: str) -> Dict[str, List[str]]:
    """Builds a word 3-gram LM (ARPA) and a lexicon from the corpus's training text in ``lm_dir``;
    returns the fairseq-generate arguments of the demo's decoders, viterbi and KenLM + lexicon."""
    os.makedirs(lm_dir, exist_ok=True)
    arpa, lexicon = os.path.join(lm_dir, "lm.arpa"), os.path.join(lm_dir, "lexicon.txt")
    sentences = read_sentences(os.path.join(corpus, "lm.txt"))
    KneserNeyLM(sentences, order=3).write_arpa(arpa)
    write_lexicon((w for s in sentences for w in s), lexicon)
    print(f"  {arpa}, {lexicon}")
    return {
        "viterbi": ["--decoder", "viterbi"],
        "KenLM 3-gram + lexicon": ["--decoder", "lexicon_beam", "--kenlm-model", arpa, "--lexicon", lexicon,
                                   "--kenlm-weight", "1.0", "--word-score", "0", "--ctc-beam", "50"],
    }


def run_demo(work: str = "work/demo", pretrain_updates: int = 1500, finetune_updates: int = 1200) -> Dict:
    """Runs the demo (see the module docstring) in ``work``; returns {starting point: {decoder:
    {"wer", "rtf"}}}."""
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    stage("1/5 demo corpus (espeak-ng, 16 kHz)")
    corpus = build_corpus(os.path.join(work, "corpus"))
    print(f"  manifests, labels and dictionary in {corpus}", flush=True)

    stage(f"2/5 data2vec pre-training, tiny model, {pretrain_updates} updates")
    pre_dir = os.path.join(work, "pretrain")
    hydra_train("pretraining", pre_dir, pretrain_updates, [f"task.data={corpus}"],
                os.path.join(work, "pretrain.log"))
    pretrained = os.path.join(pre_dir, "checkpoint_last.pt")

    finetuned = {}
    for name, extra in (("pretrained", []), ("random init", ["+model.no_pretrained_weights=true"])):
        stage(f"3/5 CTC fine-tuning from {name}, {finetune_updates} updates")
        tag = name.replace(" ", "_")
        ft_dir = os.path.join(work, f"finetune_{tag}")
        hydra_train("finetuning", ft_dir, finetune_updates,
                    [f"task.data={corpus}", f"model.w2v_path={pretrained}", *extra], os.path.join(work, f"finetune_{tag}.log"))
        finetuned[name] = os.path.join(ft_dir, "checkpoint_best.pt")

    stage("4/5 language model: word 3-gram (modified Kneser-Ney, ARPA) and lexicon from the training text")
    decoders = demo_decoders(corpus, os.path.join(work, "lm"))

    stage("5/5 decoding the test set with fairseq-generate")
    table: Dict[str, Dict[str, Dict[str, float]]] = {}
    for name, checkpoint in finetuned.items():
        for dec_name, dec_args in decoders.items():
            print(f"  {name} / {dec_name}", flush=True)
            out_dir = os.path.join(work, "decode", name.replace(" ", "_"), dec_name.split()[0].lower())
            table.setdefault(name, {})[dec_name] = decode(corpus, checkpoint, out_dir, dec_args)

    stage(f"WER on the demo test set (40 utterances); {time.time() - start:.0f} s in all")
    header = f"{'fine-tuned from':16s}" + "".join(f"{d:>26s}" for d in decoders)
    print(header)
    for name, row in table.items():
        print(f"{name:16s}" + "".join(f"{row[d]['wer']:>19.2f} (RTF {row[d]['rtf']:.3f})"[-26:].rjust(26) for d in decoders))
    print(f"\nhypotheses and references: {work}/decode/*/*/generate-test.txt")
    return table
