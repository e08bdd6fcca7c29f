"""The speed table of ``make bench``: every family and modality against its reference, at the
tiny width and at Base width, interleaved, with model FLOPs utilization and where the time goes.

    .venv/bin/python bench/speed_table.py [--widths tiny,base] [--rows ROW,...] [--rounds 2]
                                          [--updates 12] [--profile] [--json OUT]
                                          [--device cuda --precision bf16]

Rows (ours against, in the installed fairseq): v1 speech (``data2vec_audio``), v1 text
(``data2vec_text``), data2vec 2.0 speech / images / text (``data2vec_multi``); each run is one
fairseq-hydra-train process (``_train_once.py``) timed around fairseq's Trainer (``_profile.py``:
the first two updates warm up, the third is FLOP-counted, the rest are timed). Widths:

* tiny: the benchmarks' small models (v1: ``tiny_cpu.yaml``, 4 blocks of 64 dims; 2.0: 4 blocks of
  128 dims), their data;
* base: 768 dims, 12 heads, 3072 feed-forward, 2 blocks (so that a run takes minutes), with the
  real input sizes: the 512-channel speech front end on the demo recordings (crops up to 5 s;
  batches of 20 s of audio for v1, 10 s for 2.0, whose clone_batch 8 makes 80), 224-pixel images in
  16-pixel patches (2 images, 16 clones), 512-token text (v1: 4 sequences; 2.0: 2, 8 clones); the
  2.0 recipes keep their released clone_batch and decoders.

MFU: FLOPs of an update (student forward and backward, teacher forward, decoder) times
updates/s over the machine's fp32 matmul peak (``_profile.peak_flops``, measured first). A line
before and after the table gives the load average and any other busy process, so a figure
measured beside other work says so. Then the inference row (``inference_speed.py``) per width.
``--device cuda`` runs every row on the GPU in ``--precision`` (fp32, fp16 with fairseq's loss
scaling, bf16), MFU against that device's matmul peak in that precision; ``bench/gpu_check.py``
calls it so.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _measure
import multi_speed
import pretrain_speed
import text_speed
from _measure import front_end
from _profile import peak_flops

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
BASE = {"embed": 768, "heads": 12, "ffn": 3072, "blocks": 2}
# fairseq's precision flags, and the dtype of the matmul peak each is measured against
PRECISIONS = {"fp32": ([], "float32"), "fp16": (["common.fp16=true"], "float16"),
              "bf16": (["common.fp16=false", "common.bf16=true"], "bfloat16")}


V1_SPEECH_BASE = [front_end(512), f"model.encoder_embed_dim={BASE['embed']}",
                  f"model.encoder_ffn_embed_dim={BASE['ffn']}", f"model.encoder_attention_heads={BASE['heads']}",
                  f"model.encoder_layers={BASE['blocks']}", f"model.average_top_k_layers={BASE['blocks']}",
                  "model.conv_pos_groups=16", "task.max_sample_size=80000", "dataset.max_tokens=320000"]
V1_TEXT_BASE = [f"model.transformer.encoder.embed_dim={BASE['embed']}",
                f"model.transformer.encoder.ffn_embed_dim={BASE['ffn']}",
                f"model.transformer.encoder.attention_heads={BASE['heads']}",
                f"model.transformer.encoder.layers={BASE['blocks']}", f"model.average_top_k_layers={BASE['blocks']}",
                "task.tokens_per_sample=512", "model.transformer.max_source_positions=512", "dataset.batch_size=4"]
V2_BASE_SHARED = [f"model.depth={BASE['blocks']}", f"+model.num_heads={BASE['heads']}",
                  f"model.average_top_k_layers={BASE['blocks']}", f"model.embed_dim={BASE['embed']}"]
V2_BASE = {
    "audio": V2_BASE_SHARED + [
        "model.modalities.audio.feature_encoder_spec='[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2'",
        "model.modalities.audio.decoder.decoder_dim=384", "dataset.max_tokens=160000",
        "task.max_sample_size=80000"],
    "image": V2_BASE_SHARED + [
        "+task.input_size=224", "+model.modalities.image.input_size=224", "+model.modalities.image.patch_size=16",
        f"+model.modalities.image.embed_dim={BASE['embed']}", f"+model.embed_dim={BASE['embed']}",
        "model.modalities.image.prenet_depth=2", "model.modalities.image.decoder.decoder_dim=768",
        "model.modalities.image.decoder.decoder_layers=6", "model.clone_batch=16", "dataset.batch_size=2"],
    "text": V2_BASE_SHARED + [
        "task.tokens_per_sample=512", "+model.modalities.text.max_source_positions=512",
        "model.modalities.text.decoder.decoder_dim=768", "dataset.batch_size=2"],
}
V2_BASE["image"] = [o for o in V2_BASE["image"] if not o.startswith("model.embed_dim")]


def v1_speech(kind, width, updates, work):
    data = os.path.join(work, "speech-v1")
    if not os.path.isfile(os.path.join(data, "train.tsv")):
        from d2v_fairseq.demos.speech_corpus import build_corpus

        build_corpus(data)
    return pretrain_speed.run(kind, data, updates, "tiny", work, sizes=V1_SPEECH_BASE if width == "base" else [])


def v1_text(kind, width, updates, work):
    data = os.path.join(work, "text-v1")
    text_speed.build_data(data)
    return text_speed.run(kind, data, updates, work, sizes=V1_TEXT_BASE if width == "base" else [])


def v2(modality):
    def run(kind, width, updates, work):
        data = multi_speed.data_for(modality, work)
        return multi_speed.run(kind, modality, updates, work, data, sizes=V2_BASE[modality] if width == "base" else [])
    return run


ROWS = {"v1-speech": ("v1 speech", v1_speech), "v1-text": ("v1 text", v1_text),
        "v2-speech": ("2.0 speech", v2("audio")), "v2-images": ("2.0 images", v2("image")),
        "v2-text": ("2.0 text", v2("text"))}


def machine_load() -> str:
    """The 1-minute load average and the busiest processes other than this benchmark's."""
    load = open("/proc/loadavg").read().split()[0]
    mine = {os.getpid(), os.getppid()}
    busy = []
    out = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:8]:
        pid, ppid, cpu, comm = line.split(None, 3)
        if float(cpu) >= 20 and int(pid) not in mine and int(ppid) not in mine and comm != "ps":
            busy.append(f"{comm} (pid {pid}, {cpu}% CPU)")
    return f"load average {load}; " + ("other busy processes: " + ", ".join(busy) if busy else "no other busy process")


def stage_line(stages):
    total = sum(stages.values())
    top = sorted(stages.items(), key=lambda kv: -kv[1])[:6]
    return ", ".join(f"{name} {100 * s / total:.0f}%" for name, s in top)


def git_commit():
    """The checkout's short commit (None outside a git checkout): every table records what ran."""
    try:
        out = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="tiny,base")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--rounds", type=int, default=2, help="interleaved (ours, reference) pairs per row")
    parser.add_argument("--updates", type=int, default=20, help="updates per tiny run (the first 3 are not timed)")
    parser.add_argument("--base-updates", type=int, default=8, help="updates per Base-width run")
    parser.add_argument("--profile", action="store_true", help="print where each of our updates' time goes")
    parser.add_argument("--no-inference", action="store_true", help="leave out the inference row")
    parser.add_argument("--flops-only", action="store_true", help="only count our FLOPs per update (one short "
                        "run per row and width; no timing)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where every run trains")
    parser.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS),
                        help="training precision (fp16 and bf16 need --device cuda)")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    logging.getLogger("PIL").setLevel(logging.WARNING)  # building the digits data logs every image
    flags, dtype = PRECISIONS[args.precision]
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.exit(2, "speed_table: --device cuda, but torch.cuda.is_available() is False\n")
        _measure.EXTRA_OVERRIDES[:] = ["common.cpu=false", *flags]
        where = torch.cuda.get_device_name(0)
    elif args.precision != "fp32":
        parser.exit(2, f"speed_table: --precision {args.precision} needs --device cuda\n")
    else:
        where = f"{os.cpu_count()} CPUs"
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="d2v-speed-table-"))
    os.makedirs(work, exist_ok=True)
    peak = peak_flops(size=8192 if args.device == "cuda" else 2048, device=args.device, dtype=dtype)
    print(f"{args.precision} matmul peak: {peak / 1e9:.1f} GFLOP/s ({where}); {machine_load()}", flush=True)
    table, everything = [], []
    for width in args.widths.split(","):
        for row in args.rows.split(","):
            label, run = ROWS[row]
            if args.flops_only:
                r = run("ours", width, 3, work)  # two warm-up updates, then the counted one
                print(f"{label:12s}{width:>6s}{r['flops_per_update'] / 1e9:11.1f} GFLOP/update", flush=True)
                everything.append({"row": label, "width": width, "flops_per_update": r["flops_per_update"]})
                continue
            runs = {"ours": [], "reference": []}
            for _ in range(args.rounds):
                for kind in ("ours", "reference"):
                    r = run(kind, width, args.base_updates if width == "base" else args.updates, work)
                    r.pop("log", None)
                    runs[kind].append(r)
                    print(f"  {label} {width} {kind:9s} {r['updates_per_s']:.3f} updates/s, "
                          f"{(r.get('flops_per_update') or 0) / 1e9:.1f} GFLOP/update", flush=True)
            med = {k: statistics.median(r["updates_per_s"] for r in v) for k, v in runs.items()}
            flops = {k: statistics.median(r.get("flops_per_update") or 0 for r in v) for k, v in runs.items()}
            entry = {"row": label, "width": width, "ours": med["ours"], "reference": med["reference"],
                     "ratio": med["ours"] / med["reference"],
                     "mfu_ours": flops["ours"] * med["ours"] / peak, "mfu_reference": flops["reference"] *
                     med["reference"] / peak, "gflop_per_update": flops["ours"] / 1e9,
                     "stages": runs["ours"][-1].get("stages", {})}
            table.append(entry)
            everything.append({**entry, "runs": runs})
            if args.profile and entry["stages"]:
                print(f"    ours: {stage_line(entry['stages'])}", flush=True)
    if args.flops_only:
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "commit": git_commit(), "peak_flops": peak,
                           "rows": everything}, f, indent=1)
        return
    print(f"\n{'row':12s}{'width':>6s}{'ours upd/s':>12s}{'ref upd/s':>11s}{'ratio':>8s}{'GFLOP/upd':>11s}"
          f"{'MFU ours':>10s}{'MFU ref':>9s}")
    for e in table:
        print(f"{e['row']:12s}{e['width']:>6s}{e['ours']:12.3f}{e['reference']:11.3f}{e['ratio']:7.2f}x"
              f"{e['gflop_per_update']:11.1f}{100 * e['mfu_ours']:9.1f}%{100 * e['mfu_reference']:8.1f}%")
    inference = []
    if not args.no_inference and args.device == "cpu":  # inference_speed.py measures on the CPU
        for width in args.widths.split(","):
            proc = subprocess.run([sys.executable, os.path.join(BENCH, "inference_speed.py"), "--width", width,
                                   "--work", os.path.join(work, "inference")], capture_output=True, text=True)
            found = [line for line in proc.stdout.splitlines() if line.startswith("INFERENCE_RESULT")]
            if proc.returncode != 0 or not found:
                print(f"inference {width}: failed\n{(proc.stdout + proc.stderr)[-3000:]}")
                continue
            _, _, _, features, _, ctc, _, diff = found[0].split()
            inference.append({"width": width, "features": float(features), "ctc": float(ctc), "diff": float(diff)})
            print(f"inference   {width:>6s}  features {float(features):.2f}x  CTC {float(ctc):.2f}x transformers "
                  f"(max |diff| {float(diff):.1e})", flush=True)
    print(f"after: {machine_load()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "commit": git_commit(), "device": where,
                       "precision": args.precision,
                       "peak_flops": peak, "rows": everything, "inference": inference}, f, indent=1)


if __name__ == "__main__":
    main()
