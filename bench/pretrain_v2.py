"""data2vec 2.0 against v1 for speech, as time to the same quality (``make bench-v2``).

    .venv/bin/python bench/pretrain_v2.py [--work work/bench-v2] [--budget-ratio 3] [--widths 64,128,256,512]
        [--width CHANNELS] [--v2-overrides KEY=VALUE ...]

1. Throughput: seconds of distinct audio consumed per second of pre-training, v1
   (examples/audio/pretraining/tiny_cpu.yaml) and 2.0 (v2_tiny_cpu.yaml: the same tiny model),
   on the demo corpus, one run each (fairseq's ``wps`` counts audio samples); then the same
   with the conv front end widened (``--widths``, up to the reference's 512 channels, the same
   blocks), where 2.0's lever, one front-end and teacher pass per ``clone_batch`` copies, grows.
2. Time to quality: v1 pre-trains for the demo's budget (wall time T1, fairseq's "done training
   in"); 2.0 pre-trains for at most T1 / budget-ratio (as many updates as its measured speed
   allows, with fairseq's stop_time_hours as a hard stop); both fine-tune with the demo's CTC
   budget and config and decode the demo test set (viterbi, and KenLM 3-gram + lexicon).
   ``--width`` runs stages 1 (first part) and 2 with the front end that many channels wide (the
   demo's model has 64); ``--v2-overrides`` adds hydra overrides to 2.0's pre-training.

Prints the sweep's table, then one table with a row per method: pre-training wall time (s),
audio seconds/s, fine-tuned viterbi WER, KenLM WER. Stages reuse what an earlier run in --work built.
"""

import argparse
import os
import re
import tempfile
from typing import Sequence

from omegaconf import OmegaConf

from _measure import front_end, train_once  # bench/ is the script's directory

from d2v_fairseq.demos.speech_corpus import build_corpus
from d2v_fairseq.demos.common import hydra_train, stage, trained_updates
from d2v_fairseq.demos.speech import decode, demo_decoders

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {"v1": "tiny_cpu", "2.0": "v2_tiny_cpu"}
SAMPLE_RATE = 16000


def audio_seconds(log: str, method: str = "v1") -> float:
    """Seconds of audio the run's train_inner lines account for (per interval: samples per batch
    x updates). v1 logs samples as wpb; 2.0 (fairseq's ``model`` criterion) logs its masked
    frames over all copies, so samples = wpb / masked_pct / clone_batch x 320 (the front end's stride)."""
    total, last = 0.0, 0
    for line in re.findall(r"train_inner.*", log):
        wpb, updates = re.search(r"wpb=([\d.]+)", line), re.search(r"num_updates=(\d+)", line)
        if not (wpb and updates):
            continue
        samples = float(wpb.group(1))
        if method == "2.0":
            masked = float(re.search(r"masked_pct=([\d.]+)", line).group(1))
            samples = samples / masked / clone_batch() * 320
        total += samples * (int(updates.group(1)) - last)
        last = int(updates.group(1))
    return total / SAMPLE_RATE


def front_end_for(method: str, width: int) -> str:
    """The conv front end override of ``method``'s config (2.0: data2vec_multi's field)."""
    override = front_end(width)
    if method == "2.0":
        return override.replace("model.conv_feature_layers=", "model.modalities.audio.feature_encoder_spec=")
    return override


def throughput(method: str, corpus: str, updates: int, overrides: Sequence[str] = ()) -> dict:
    """Pre-trains ``updates`` updates (no validation, no checkpoint); audio seconds per second."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--config-dir", os.path.join(REPO, "examples", "audio", "pretraining"), "--config-name", CONFIGS[method],
                f"common.user_dir={REPO}/d2v_fairseq", f"task.data={corpus}", f"checkpoint.save_dir={tmp}/ckpt",
                f"optimization.max_update={updates}", "dataset.disable_validation=true", "checkpoint.no_save=true",
                "common.log_interval=5", *overrides]
        result = train_once(method, args, tmp, updates, keep_log=True)
    result["audio_s_per_s"] = audio_seconds(result.pop("log"), method) / result["train_s"]
    return result


def pretrain_seconds(log_path: str) -> float:
    """fairseq's "done training in X seconds" of a pre-training log."""
    with open(log_path) as f:
        return float(re.findall(r"done training in ([\d.]+) seconds", f.read())[-1])


def clone_batch() -> int:
    """2.0's copies per sample in its tiny config."""
    config = OmegaConf.load(os.path.join(REPO, "examples", "audio", "pretraining", CONFIGS["2.0"] + ".yaml"))
    return int(config.model.clone_batch)


def throughput_sweep(corpus: str, widths: Sequence[int], updates: int) -> None:
    """Audio seconds/s of v1 and 2.0 as the conv front end widens (each config's own batch), and
    masked views/s: every second of audio is one masked view in v1, ``clone_batch`` in 2.0."""
    copies = clone_batch()
    stage(f"throughput as the conv front end widens: {updates} updates each, the same blocks")
    print(f"{'channels':>8s}{'v1 audio s/s':>14s}{'2.0 audio s/s':>15s}{'v1 / 2.0':>10s}"
          f"{'v1 views/s':>12s}{'2.0 views/s':>13s}", flush=True)
    for width in widths:
        speed = {m: throughput(m, corpus, updates, [front_end_for(m, width)])["audio_s_per_s"] for m in CONFIGS}
        print(f"{width:8d}{speed['v1']:14.1f}{speed['2.0']:15.1f}{speed['v1'] / speed['2.0']:10.2f}"
              f"{speed['v1']:12.1f}{speed['2.0'] * copies:13.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=os.path.join(REPO, "work", "bench-v2"))
    parser.add_argument("--pretrain-updates", type=int, default=1500, help="v1's budget (the demo's)")
    parser.add_argument("--finetune-updates", type=int, default=1200, help="the demo's CTC budget")
    parser.add_argument("--budget-ratio", type=float, default=3.0, help="2.0 gets T1 / this much time")
    parser.add_argument("--throughput-updates", type=int, default=40)
    parser.add_argument("--widths", default="64,128,256,512",
                        help="conv front-end channels of the throughput sweep (64: the tiny configs'; '' skips it)")
    parser.add_argument("--sweep-updates", type=int, default=20, help="updates per run of the sweep")
    parser.add_argument("--width", type=int, default=None,
                        help="conv front-end channels of the time-to-quality runs (default: the tiny configs' 64)")
    parser.add_argument("--v2-overrides", nargs="*", default=[], help="extra hydra overrides for 2.0's pre-training")
    args = parser.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)

    stage("demo corpus")
    corpus = build_corpus(os.path.join(work, "corpus"))

    model = {m: [front_end_for(m, args.width)] if args.width else [] for m in CONFIGS}
    stage(f"throughput: {args.throughput_updates} updates each, same tiny model and data"
          + (f", front end {args.width} channels" if args.width else ""))
    speed = {m: throughput(m, corpus, args.throughput_updates, model[m]) for m in CONFIGS}
    for m, r in speed.items():
        print(f"  {m}: {r['updates_per_s']:.2f} updates/s, {r['audio_s_per_s']:.1f} audio s/s, bsz {r['bsz']:.1f}")

    widths = [int(w) for w in args.widths.split(",") if w.strip()]
    if widths:
        throughput_sweep(corpus, widths, args.sweep_updates)

    stage(f"v1 pre-training, {args.pretrain_updates} updates (the demo's budget)")
    wall, updates = {}, {"v1": args.pretrain_updates}
    pre_dirs = {m: os.path.join(work, f"pretrain_{m}") for m in CONFIGS}
    logs = {m: os.path.join(work, f"pretrain_{m}.log") for m in CONFIGS}
    hydra_train("pretraining", pre_dirs["v1"], updates["v1"], [f"task.data={corpus}", *model["v1"]], logs["v1"],
                config_name=CONFIGS["v1"])
    wall["v1"] = pretrain_seconds(logs["v1"])
    budget = wall["v1"] / args.budget_ratio
    # as many updates as 2.0's measured speed fits in the budget, less 10% for start-up and saving
    updates["2.0"] = int(0.9 * budget * speed["2.0"]["updates_per_s"])

    stage(f"2.0 pre-training: at most {budget:.0f} s (T1 / {args.budget_ratio:g}), {updates['2.0']} updates")
    if os.path.isfile(logs["2.0"]) and "done training" in open(logs["2.0"]).read():
        print(f"  already trained ({logs['2.0']}): reusing it", flush=True)
    else:
        hydra_train("pretraining", pre_dirs["2.0"], updates["2.0"],
                    [f"task.data={corpus}", f"optimization.stop_time_hours={budget / 3600:.6f}", *model["2.0"],
                     *args.v2_overrides], logs["2.0"],
                    config_name=CONFIGS["2.0"])
    wall["2.0"] = pretrain_seconds(logs["2.0"])
    updates["2.0"] = trained_updates(pre_dirs["2.0"])

    stage("language model: word 3-gram and lexicon from the training text")
    demo = demo_decoders(corpus, os.path.join(work, "lm"))
    # short names: they name the decode directories
    decoders = {"viterbi": demo["viterbi"], "kenlm": demo["KenLM 3-gram + lexicon"]}

    wer = {}
    for m in CONFIGS:
        stage(f"CTC fine-tuning from {m}, {args.finetune_updates} updates, then decoding")
        ft_dir = os.path.join(work, f"finetune_{m}")
        hydra_train("finetuning", ft_dir, args.finetune_updates,
                    [f"task.data={corpus}", f"model.w2v_path={pre_dirs[m]}/checkpoint_last.pt"],
                    os.path.join(work, f"finetune_{m}.log"))
        wer[m] = {d: decode(corpus, os.path.join(ft_dir, "checkpoint_best.pt"), os.path.join(work, "decode", m, d),
                            dec_args)["wer"] for d, dec_args in decoders.items()}

    stage(f"data2vec 2.0 vs v1 on the demo corpus ({os.cpu_count()} CPU threads)")
    print(f"{'method':8s}{'pre-train s':>12s}{'updates':>9s}{'audio s/s':>11s}{'viterbi WER':>13s}{'KenLM WER':>11s}")
    for m in CONFIGS:
        print(f"{m:8s}{wall[m]:12.0f}{updates[m]:9d}{speed[m]['audio_s_per_s']:11.1f}"
              f"{wer[m]['viterbi']:13.2f}{wer[m]['kenlm']:11.2f}")
    gain = wer["v1"]["viterbi"] - wer["2.0"]["viterbi"]
    print(f"\n2.0 in {wall['2.0'] / wall['v1']:.2f} of v1's pre-training time: viterbi WER "
          f"{'no worse' if gain >= 0 else 'WORSE'} ({gain:+.2f} points)")


if __name__ == "__main__":
    main()
