"""What the demos share: running fairseq's commands with progress, resuming a stage that is
done, fine-tuning over seeds, and the closing table of pre-trained vs random init."""

import os
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from ..checkpoints import stopped_early, updates_in
from ..environment import config_root
from ..modules.errors import InputError

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOW = ("train_inner", "valid on", "done training", "Error", "WER:", "real-time factor", "Traceback")


class StageFailed(InputError):
    """A training or decoding stage that stopped: one line naming it, its cause and its log."""


def failure_cause(lines: List[str]) -> str:
    """The line of a failed command's output that says why: the last error line, else the last line."""
    text = [line.strip() for line in lines if line.strip()]
    for line in reversed(text):
        if ("Error" in line or "error:" in line) and not line.startswith(("File ", "Traceback", "raise ")):
            return line[-300:]
    return text[-1][-300:] if text else "no output"


def stage(message: str) -> None:
    """Prints a stage header."""
    print(f"\n=== {message}", flush=True)


def run(cmd: List[str], log_path: str, show=SHOW, what: str = "") -> str:
    """Runs ``cmd``, printing the lines that show progress and saving all output to
    ``log_path``; returns the output. A failure raises ``StageFailed``: one line naming the
    stage (``what``, default the log's name), the cause and the log, which keeps everything."""
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
        what = what or os.path.splitext(os.path.basename(log_path))[0]
        raise StageFailed(f"stage {what!r} failed (exit {proc.returncode}): {failure_cause(lines)}; full log: "
                          f"{log_path}; run the same command again to resume from the last finished stage")
    return "".join(lines)


def trained_updates(save_dir: str) -> int:
    """Updates done by the run in ``save_dir`` (0 if none or unreadable)."""
    return updates_in(os.path.join(save_dir, "checkpoint_last.pt"))


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
    seeds = len(next(iter(runs.values())))
    if seeds > 1:
        header, percent = next((h, p) for k, h, p in columns if k == deciding)
        for name, scores in runs.items():
            print(f"  {name}: {header} per fine-tuning seed "
                  + ", ".join(f"{r[deciding]:.1f}{'%' if percent else ''}" for r in scores))
        note += f", mean of {seeds} fine-tuning seeds"
    print_comparison({name: mean_scores(scores) for name, scores in runs.items()}, columns, deciding, note)


def cell(value: Optional[float], width: int, kind) -> str:
    """A table cell: ``kind`` True a percentage, False a ratio (3 decimals), a string a format;
    ``-`` for a value that is not known (None)."""
    if value is None:
        return f"{'-':>{width}s}"
    if isinstance(kind, str):
        return f"{value:>{width}{kind}}"
    return f"{value:>{width - 1}.1f}%" if kind else f"{value:>{width}.3f}"


def timed_pretraining(save_dir: str, updates: int, overrides: List[str], log_path: str, modality: str,
                      config_name: str) -> float:
    """``hydra_train`` of a pre-training config, returning its wall-clock seconds (kept in
    SAVE_DIR/pretrain_seconds.txt, so that a reused run reports the time it took)."""
    record = os.path.join(save_dir, "pretrain_seconds.txt")
    if trained_updates(save_dir) >= updates and os.path.isfile(record):
        seconds = float(open(record).read())
        print(f"  already trained ({updates} updates in {save_dir}, {seconds:.0f} s): reusing it", flush=True)
        return seconds
    start = time.time()
    hydra_train("pretraining", save_dir, updates, overrides, log_path, modality=modality, config_name=config_name)
    seconds = time.time() - start
    with open(record, "w") as f:
        f.write(f"{seconds:.1f}\n")
    return seconds


def print_comparison(results: Dict[str, Dict[str, float]], columns: List[tuple], deciding: str, note: str,
                     lower_is_better: bool = False, not_learned: Optional[Dict[str, str]] = None) -> bool:
    """The demos' closing table: one row per starting point ("pretrained" or "from CKPT" rows,
    and "random init"), one column per (key, header, percent?) in ``columns``, then whether each
    starting point beats random init on ``deciding`` (an error rate with ``lower_is_better``).
    ``not_learned``: starting points whose model did not learn the task -> why; such a row is
    marked and not ranked; a model that learned is judged on ``deciding`` also when random init
    did not learn (said beside the verdict). Returns whether every one wins."""
    width = max(10, *(len(header) + 2 for _, header, _ in columns))
    name_width = max(16, *(len(name) + 2 for name in results))
    print(f"{'fine-tuned from':{name_width}s}" + "".join(f"{header:>{width}s}" for _, header, _ in columns))
    for name, r in results.items():
        print(f"{name:{name_width}s}" + "".join(cell(r[key], width, percent) for key, _, percent in columns))
    header = next(h for k, h, _ in columns if k == deciding)
    print()
    not_learned = not_learned or {}
    for name, why in not_learned.items():
        print(f"not learned: {name}: {why}")
    all_win = True
    for name, r in results.items():
        if name == "random init":
            continue
        who = "pre-training" if name == "pretrained" else f"starting {name}"
        if name in not_learned:
            all_win = False
            print(f"{who}: not ranked (its model did not learn; see above)")
            continue
        gain = r[deciding] - results["random init"][deciding]
        wins = gain < 0 if lower_is_better else gain > 0
        all_win &= wins
        # a model that learned against a random init that did not: said, and still judged on the score
        beside = "; random init did not learn" if "random init" in not_learned else ""
        print(f"{who} {'wins' if wins else 'does NOT win'}: {gain:+.1f} {header} points ({note}{beside})")
    return all_win


def hydra_train(config_dir: str, save_dir: str, updates: int, overrides: List[str], log_path: str,
                modality: str = "audio", config_name: str = "tiny_cpu", show=SHOW, what: str = "") -> None:
    """``d2v train`` (fairseq-hydra-train) with the installed config
    MODALITY/CONFIG_DIR/CONFIG_NAME.yaml (an absolute CONFIG_DIR is taken as it is), unless
    ``save_dir`` already holds that many updates (fairseq itself would resume and run one more);
    ``show``: which log lines to print (see ``run``)."""
    done = trained_updates(save_dir)
    if done >= updates or stopped_early(save_dir, done):
        if show:
            early = " (stopped early)" if done < updates else ""
            print(f"  already trained ({done} updates{early} in {save_dir}): reusing it", flush=True)
        return
    cmd = [sys.executable, "-m", "d2v_fairseq", "train", "--config-dir", os.path.join(config_root(), modality, config_dir),
           "--config-name", config_name, f"common.user_dir={PACKAGE}", f"checkpoint.save_dir={save_dir}",
           f"optimization.max_update={updates}", f"hydra.run.dir={save_dir}/hydra", *overrides]
    run(cmd, log_path, show, what)
