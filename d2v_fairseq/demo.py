"""The main job on the built-in demo corpus (``make demo``), the whole speech pipeline:

1. synthesize the demo spoken corpus with espeak-ng;
2. pre-train a tiny data2vec_audio model (examples/audio/pretraining/tiny_cpu.yaml);
3. fine-tune it with CTC on letters (examples/audio/finetuning/tiny_cpu.yaml), and, with the
   same budget, the same architecture from random initialization (the baseline);
4. build a word 3-gram LM (ARPA, modified Kneser-Ney) and a lexicon from the training text;
5. decode the test set with fairseq-generate, viterbi and lexicon beam search + KenLM;
6. print a WER table with the decoding real-time factors.

    python -m d2v_fairseq.demo --work work/demo

Every stage reuses what an earlier run built (fairseq resumes from checkpoint_last.pt).
"""

import argparse
import os
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List

from .data.demo_corpus import build_corpus
from .decoding.lm import KneserNeyLM, read_sentences, write_lexicon

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
SHOW = ("train_inner", "valid on", "done training", "Error", "WER:", "real-time factor", "Traceback")


def stage(message: str) -> None:
    """Prints a stage header."""
    print(f"\n=== {message}", flush=True)


def run(cmd: List[str], log_path: str, show=SHOW) -> str:
    """Runs ``cmd``, printing the lines that show progress and saving all output to
    ``log_path``; returns the output. Stops the demo with the log's tail on failure."""
    lines = []
    with open(log_path, "w") as log, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
    ) as proc:
        for line in proc.stdout:
            log.write(line)
            lines.append(line)
            if any(key in line for key in show):
                print("  " + line.rstrip().split(" - ", 1)[-1][:200], flush=True)
    if proc.returncode != 0:
        tail = "".join(lines[-30:])
        raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}\nfull log: {log_path}")
    return "".join(lines)


def trained_updates(save_dir: str) -> int:
    """Updates done by the run in ``save_dir`` (0 if none)."""
    import torch

    path = os.path.join(save_dir, "checkpoint_last.pt")
    if not os.path.isfile(path):
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    return int(state["optimizer_history"][-1]["num_updates"])


def mean_scores(runs: List[Dict[str, float]]) -> Dict[str, float]:
    """The mean of each score (number) over fine-tuning runs on the same test set (``n``: its size)."""
    mean = {key: sum(r[key] for r in runs) / len(runs) for key, value in runs[0].items()
            if key != "n" and isinstance(value, (int, float))}
    return {**mean, "n": runs[0]["n"]}


def finetune_seeds(work: str, name: str, seeds: int, what: str, finetune: Callable[[str, str, int], None],
                   evaluate: Callable[[str], Dict]) -> List[Dict]:
    """Fine-tunes from the starting point ``name`` with seeds 1..``seeds``, each run in
    WORK/finetune_NAME[_seedN] (``finetune(save_dir, log_path, seed)``), and returns the scores
    ``evaluate`` gives each run's best checkpoint."""
    runs = []
    for seed in range(1, seeds + 1):
        stage(f"3/4 fine-tuning from {name}: {what}, seed {seed} of {seeds}")
        tag = name.replace(" ", "_") + (f"_seed{seed}" if seeds > 1 else "")
        save_dir = os.path.join(work, f"finetune_{tag}")
        finetune(save_dir, os.path.join(work, f"finetune_{tag}.log"), seed)
        runs.append(evaluate(os.path.join(save_dir, "checkpoint_best.pt")))
    return runs


def print_seed_comparison(runs: Dict[str, List[Dict]], columns: List[tuple], deciding: str, note: str) -> None:
    """``print_comparison`` of the mean scores of each starting point's fine-tuning runs; with
    several seeds, first each seed's ``deciding`` score."""
    seeds = len(runs["pretrained"])
    if seeds > 1:
        header, percent = next((h, p) for k, h, p in columns if k == deciding)
        for name, scores in runs.items():
            print(f"  {name}: {header} per fine-tuning seed "
                  + ", ".join(f"{r[deciding]:.1f}{'%' if percent else ''}" for r in scores))
        note += f", mean of {seeds} fine-tuning seeds"
    print_comparison({name: mean_scores(scores) for name, scores in runs.items()}, columns, deciding, note)


def print_comparison(results: Dict[str, Dict[str, float]], columns: List[tuple], deciding: str, note: str) -> None:
    """The demos' closing table: one row per starting point ("pretrained", "random init"), one
    column per (key, header, percent?) in ``columns``, then whether pre-training wins on ``deciding``."""
    print(f"{'fine-tuned from':16s}" + "".join(f"{header:>10s}" for _, header, _ in columns))
    for name, r in results.items():
        print(f"{name:16s}" + "".join(f"{r[key]:>9.1f}%" if percent else f"{r[key]:>10.3f}" for key, _, percent in columns))
    header = next(h for k, h, _ in columns if k == deciding)
    gain = results["pretrained"][deciding] - results["random init"][deciding]
    print(f"\npre-training {'wins' if gain > 0 else 'does NOT win'}: {gain:+.1f} {header} points ({note})")


def hydra_train(config_dir: str, save_dir: str, updates: int, overrides: List[str], log_path: str,
                modality: str = "audio", config_name: str = "tiny_cpu") -> None:
    """fairseq-hydra-train with examples/MODALITY/CONFIG_DIR/CONFIG_NAME.yaml, unless ``save_dir``
    already holds that many updates (fairseq itself would resume and run one more)."""
    done = trained_updates(save_dir)
    if done >= updates:
        print(f"  already trained ({done} updates in {save_dir}): reusing it", flush=True)
        return
    cmd = [os.path.join(BIN, "fairseq-hydra-train"), "--config-dir", os.path.join(REPO, "examples", modality, config_dir),
           "--config-name", config_name, f"common.user_dir={PACKAGE}", f"checkpoint.save_dir={save_dir}",
           f"optimization.max_update={updates}", f"hydra.run.dir={save_dir}/hydra", *overrides]
    run(cmd, log_path)


def decode(corpus: str, checkpoint: str, out_dir: str, decoder_args: List[str]) -> Dict[str, float]:
    """fairseq-generate on the test set; returns {"wer", "rtf"} (cached beside the results)."""
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, "generate.log")
    if os.path.isfile(log_path) and os.path.getmtime(log_path) > os.path.getmtime(checkpoint):
        output = open(log_path).read()
        print(f"  reusing {log_path}")
    else:
        cmd = [os.path.join(BIN, "fairseq-generate"), corpus, "--user-dir", PACKAGE, "--task", "d2v_audio_ctc",
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


def main() -> None:
    """Runs the demo (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="work/demo", help="where the corpus, checkpoints and results go")
    parser.add_argument("--pretrain-updates", type=int, default=1500)
    parser.add_argument("--finetune-updates", type=int, default=1200)
    args = parser.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    stage("1/5 demo corpus (espeak-ng, 16 kHz)")
    corpus = build_corpus(os.path.join(work, "corpus"))
    print(f"  manifests, labels and dictionary in {corpus}", flush=True)

    stage(f"2/5 data2vec pre-training, tiny model, {args.pretrain_updates} updates")
    pre_dir = os.path.join(work, "pretrain")
    hydra_train("pretraining", pre_dir, args.pretrain_updates, [f"task.data={corpus}"],
                os.path.join(work, "pretrain.log"))
    pretrained = os.path.join(pre_dir, "checkpoint_last.pt")

    finetuned = {}
    for name, extra in (("pretrained", []), ("random init", ["+model.no_pretrained_weights=true"])):
        stage(f"3/5 CTC fine-tuning from {name}, {args.finetune_updates} updates")
        tag = name.replace(" ", "_")
        ft_dir = os.path.join(work, f"finetune_{tag}")
        hydra_train("finetuning", ft_dir, args.finetune_updates,
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


if __name__ == "__main__":
    main()
