"""A GPU check, ready for the day a CUDA device is lent: each modality's Base-size pre-training
for a few dozen updates in fp32, fp16 (fairseq's loss scaling) and bf16, and the reference's
throughput on the same configs.

    .venv/bin/python bench/gpu_check.py [--updates 30] [--work DIR] [--only speech-v1,vision-v1]

For every (model, precision) it runs ``d2v train`` with the package's Base recipe (data2vec
speech / text / images, data2vec 2.0 speech) on synthetic data written under --work, one process,
and prints a table: the loss finite and falling, the EMA teacher on the GPU in fp32, updates/s,
samples/s and peak GPU memory. Then fairseq's own reference model (examples/data2vec) on the same
config and precision, as the ratio ours / reference (speech and text; the reference's image model
needs torchvision and timm). Then, on the GPU, ``make bench``'s comparison (``speed_table.py
--device cuda``): every v1 and data2vec 2.0 row against fairseq's reference at Base width,
interleaved, with MFU against the GPU's matmul peak in that precision (``--table-precisions``;
``--no-table`` leaves it out). Exit status 1 on any failed check; on a machine without CUDA it
says so in one line and exits 2.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, List

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
CONFIGS = os.path.join(REPO, "d2v_fairseq", "configs")
PRECISIONS = {"fp32": [], "fp16": ["common.fp16=true"], "bf16": ["common.fp16=false", "common.bf16=true"]}
# the package's Base recipes, one process, a batch a 141 GB GPU holds, validation off
RUNS = {
    "speech-v1": ("audio/pretraining", "base_librispeech", ["dataset.max_tokens=1400000"], "speech"),
    "speech-v2": ("audio/pretraining", "v2_base_librispeech", ["dataset.max_tokens=1400000"], "speech"),
    "text-v1": ("text/pretraining", "base", ["dataset.max_tokens=8192"], "text"),
    "vision-v1": ("vision/pretraining", "base_imagenet", ["dataset.batch_size=64"], "vision"),
    "vision-v2": ("vision/pretraining", "v2_base_imagenet", ["dataset.batch_size=64"], "vision"),
    "text-v2": ("text/pretraining", "v2_base", ["dataset.batch_size=16"], "text"),
}
REFERENCE = {"speech-v1": "fairseq.examples.data2vec.models.data2vec_audio"}
# --tiny: the same runs on the tiny CPU configs (with --cpu: the script's own smoke test)
TINY = {"base_librispeech": "tiny_cpu", "v2_base_librispeech": "v2_tiny_cpu", "base": "tiny_cpu",
        "base_imagenet": "tiny_cpu", "v2_base_imagenet": "v2_tiny_cpu", "v2_base": "v2_tiny_cpu"}

# runs in the training process: records the trainer, then checks the teacher and the peak memory
PROBE = r"""
import atexit, json, sys, torch
import fairseq.trainer as _t
_seen = {}
_step = _t.Trainer.train_step
def _train_step(self, *a, **k):
    _seen["trainer"] = self
    return _step(self, *a, **k)
_t.Trainer.train_step = _train_step
def _report():
    cuda = torch.cuda.is_available()
    report = {"peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")}
    trainer = _seen.get("trainer")
    if trainer is not None:
        model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
        teacher = getattr(model, "teacher", None) or getattr(model, "ema", None)
        params = list(teacher.model.parameters()) if teacher is not None else []
        report["teacher_params"] = len(params)
        report["teacher_cuda"] = all(p.is_cuda == cuda for p in params)  # on the training device
        report["teacher_fp32"] = all(p.dtype == torch.float32 for p in params)
    print("GPU_CHECK " + json.dumps(report), flush=True)
atexit.register(_report)
mode, args = sys.argv[1], sys.argv[2:]
if mode == "ours":  # d2v train: the package's launcher (user dir, precision check, world size)
    from d2v_fairseq.launch import hydra_train
    hydra_train(args)
else:  # the reference: plain fairseq-hydra-train
    sys.argv = ["fairseq-hydra-train", *args]
    from fairseq_cli.hydra_train import cli_main
    cli_main()
"""


def write_data(work: str) -> Dict[str, str]:
    """Synthetic data for each modality: 15-s noise recordings, 224 x 224 images, random text."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    speech = os.path.join(work, "speech")
    if not os.path.isfile(os.path.join(speech, "train.tsv")):
        os.makedirs(os.path.join(speech, "wav"), exist_ok=True)
        rows = []
        for i in range(64):
            samples = 160000 + 1600 * i
            sf.write(os.path.join(speech, "wav", f"{i}.wav"), (0.1 * rng.standard_normal(samples)).astype("float32"), 16000)
            rows.append(f"wav/{i}.wav\t{samples}")
        for split in ("train", "valid"):
            with open(os.path.join(speech, f"{split}.tsv"), "w") as f:
                f.write(speech + "\n" + "\n".join(rows) + "\n")
    images = os.path.join(work, "images")
    if not os.path.isfile(os.path.join(images, "manifests", "train.tsv")):
        for split in ("train", "val"):
            for c in range(4):
                folder = os.path.join(images, "img", split, f"c{c}")
                os.makedirs(folder, exist_ok=True)
                for i in range(64 if split == "train" else 4):
                    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(os.path.join(folder, f"{i}.png"))
        subprocess.run([sys.executable, "-m", "d2v_fairseq", "prepare", "images", os.path.join(images, "img"),
                        os.path.join(images, "manifests"), "--splits", "train", "val"], check=True)
    text = os.path.join(work, "text")
    if not os.path.isfile(os.path.join(text, "bin", "train.bin")):
        os.makedirs(text, exist_ok=True)
        words = [f"w{i}" for i in range(2000)]
        for split, n in (("train", 20000), ("valid", 500)):
            with open(os.path.join(text, f"{split}.txt"), "w") as f:
                f.write("\n".join(" ".join(rng.choice(words, 40)) for _ in range(n)) + "\n")
        subprocess.run([sys.executable, "-m", "d2v_fairseq", "prepare", "text", os.path.join(text, "bin"), "--train",
                        os.path.join(text, "train.txt"), "--valid", os.path.join(text, "valid.txt"),
                        "--vocab-size", "4000"], check=True)
    return {"speech": speech, "vision": os.path.join(images, "manifests"), "text": os.path.join(text, "bin")}


def run(name: str, precision: str, data: Dict[str, str], work: str, updates: int, reference: bool = False,
        tiny: bool = False) -> Dict:
    """One training run; returns losses, updates/s, samples/s and what the probe reported."""
    group, config, overrides, modality = RUNS[name]
    if tiny:
        config, overrides = TINY[config], (["dataset.batch_size=16"] if modality == "vision" else [])
    save = tempfile.mkdtemp(dir=work, prefix=f"{name}-{precision}-")
    args = ["--config-dir", os.path.join(CONFIGS, group), "--config-name", config, f"task.data={data[modality]}",
            f"checkpoint.save_dir={save}", f"hydra.run.dir={save}/hydra", f"optimization.max_update={updates}",
            "checkpoint.no_save=true", "dataset.disable_validation=true", "common.log_format=json",
            "common.log_interval=5", "dataset.num_workers=4", "distributed_training.distributed_world_size=1",
            *overrides, *PRECISIONS[precision]]
    if group.startswith("audio") and "v2" not in config:  # tri_stage: explicit steps for a short run
        args += ["lr_scheduler.phase_ratio=null", "+lr_scheduler.warmup_steps=5", "+lr_scheduler.hold_steps=100000",
                 "+lr_scheduler.decay_steps=1"]
    if modality == "vision":
        size_key = "task.input_size" if config.startswith("v2") else "task.image_size"
        args += ["dataset.train_subset=train", f"{size_key}={32 if tiny else 224}"]
    if reference:
        user_dir = os.path.join(work, "reference_user_dir")
        os.makedirs(user_dir, exist_ok=True)
        with open(os.path.join(user_dir, "__init__.py"), "w") as f:
            f.write(f"import {REFERENCE[name]}  # noqa: F401\n")
        args += [f"common.user_dir={user_dir}", "task._name=audio_pretraining", "criterion._name=model",
                 "~criterion.var_check_after_updates", "+criterion.log_keys=[ema_decay,target_var,pred_var]"]
    cmd = [sys.executable, "-c", PROBE, "reference" if reference else "ours", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    out = proc.stdout + proc.stderr
    result = {"ok_exit": proc.returncode == 0, "tail": out[-1500:]}
    inner = [json.loads(line[line.index("{"):]) for line in out.splitlines() if "train_inner" in line and "{" in line]
    result["losses"] = [float(r["loss"]) for r in inner if "loss" in r]
    train_s = re.search(r"done training in ([\d.]+) seconds", out)
    result["updates_per_s"] = updates / float(train_s.group(1)) if train_s else float("nan")
    bsz = [float(r["bsz"]) for r in inner if "bsz" in r]
    result["samples_per_s"] = (sum(bsz) / len(bsz)) * result["updates_per_s"] if bsz else float("nan")
    probe = re.search(r"GPU_CHECK (\{.*\})", out)
    result.update(json.loads(probe.group(1)) if probe else {})
    return result


def verdict(r: Dict, reference: bool) -> List[str]:
    """What failed in a run ([] when it passed)."""
    failed = []
    if not r["ok_exit"]:
        failed.append("training failed")
    losses = r["losses"]
    if not losses or not all(math.isfinite(l) for l in losses):
        failed.append("loss not finite")
    elif len(losses) > 1 and not min(losses[len(losses) // 2:]) < losses[0]:
        failed.append("loss not falling")
    if not reference and not (r.get("teacher_cuda") and r.get("teacher_fp32")):
        failed.append("teacher not on the training device in fp32")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=30, help="updates per run")
    parser.add_argument("--work", default=None, help="where the synthetic data and runs go (default: a temp dir)")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated runs, of {','.join(RUNS)}")
    parser.add_argument("--precisions", default="fp32,fp16,bf16", help="comma-separated precisions")
    parser.add_argument("--tiny", action="store_true", help="the tiny CPU configs instead of Base (a quick look)")
    parser.add_argument("--cpu", action="store_true", help="run without CUDA (with --tiny: the script's smoke test)")
    parser.add_argument("--table-precisions", default="bf16,fp32",
                        help="precisions of the speed table against the references (speed_table.py --device cuda)")
    parser.add_argument("--no-table", action="store_true", help="leave out the speed table against the references")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.cpu:
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing to check", file=sys.stderr)
        return 2
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    os.makedirs(work, exist_ok=True)
    data = write_data(work)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"device: {device}; {args.updates} updates per run{' (tiny configs)' if args.tiny else ''}; work dir {work}")
    print(f"{'run':12s}{'prec':>6s}{'loss first->last':>20s}{'teacher':>10s}{'upd/s':>8s}{'samples/s':>11s}"
          f"{'peak GB':>9s}{'vs ref':>8s}  verdict")
    failures = 0
    for name in args.only.split(","):
        for precision in args.precisions.split(","):
            r = run(name, precision, data, work, args.updates, tiny=args.tiny)
            failed = verdict(r, reference=False)
            ratio = ""
            if name in REFERENCE:
                ref = run(name, precision, data, work, args.updates, reference=True, tiny=args.tiny)
                ratio = f"{r['updates_per_s'] / ref['updates_per_s']:.2f}x" if ref["ok_exit"] else "ref fail"
            losses = r["losses"]
            span = f"{losses[0]:.3f}->{losses[-1]:.3f}" if losses else "-"
            teacher = "ok/fp32" if r.get("teacher_cuda") and r.get("teacher_fp32") else "NO"
            print(f"{name:12s}{precision:>6s}{span:>20s}{teacher:>10s}{r['updates_per_s']:8.2f}"
                  f"{r['samples_per_s']:11.1f}{r.get('peak_gb', float('nan')):9.1f}{ratio:>8s}  "
                  f"{'ok' if not failed else 'FAILED: ' + ', '.join(failed)}", flush=True)
            if failed:
                failures += 1
                print("  " + r["tail"].replace("\n", "\n  ")[-1200:], file=sys.stderr)
    if torch.cuda.is_available() and not args.no_table:
        for precision in args.table_precisions.split(","):
            print(f"\nspeed table against the references, {precision} (speed_table.py --device cuda):", flush=True)
            table = subprocess.run([sys.executable, os.path.join(BENCH, "speed_table.py"), "--device", "cuda",
                                    "--precision", precision, "--widths", "base", "--rounds", "2", "--base-updates",
                                    "20", "--work", os.path.join(work, "speed-table"),
                                    "--json", os.path.join(work, f"speed_table_{precision}.json")])
            failures += table.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
