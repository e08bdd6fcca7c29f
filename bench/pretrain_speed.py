"""Pre-training speed: this package's data2vec_audio against the data2vec_audio model that
ships inside the installed fairseq (examples/data2vec), on the same config and data, in one run.

    .venv/bin/python bench/pretrain_speed.py [--updates 40] [--preset tiny|frontend512] [--data DIR]

Both train with fairseq-hydra-train from examples/audio/pretraining/tiny_cpu.yaml on the demo
corpus (built if missing), validation off, same seed, one process each. The reference runs
with fairseq's ``audio_pretraining`` task and ``model`` criterion through a temporary user-dir
that imports only its speech model (its package also holds image tasks needing torchvision).
Prints updates/s, samples/s and peak RSS of each, the ratios (ours / reference), and a
per-stage timing of one of our updates.
"""

import argparse
import os
import tempfile
import time

from _measure import front_end, print_table, train_once, with_overrides  # bench/ is the script's directory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "examples", "audio", "pretraining")
PRESETS = {
    "tiny": [],
    # DESIGN.md's measured setting: full 512-channel conv front end, 4 blocks of 128 dims
    "frontend512": [
        front_end(512),
        "model.encoder_embed_dim=128", "model.encoder_ffn_embed_dim=512",
    ],
}


def run(kind: str, data: str, updates: int, preset: str, workdir: str, sizes=()) -> dict:
    """One run of ``kind`` (ours or reference); ``sizes`` overrides replace the preset's."""
    common = [
        f"task.data={data}", f"checkpoint.save_dir={workdir}/{kind}_ckpt", f"optimization.max_update={updates}",
        "dataset.disable_validation=true", "checkpoint.no_save=true", "common.log_interval=5",
        "lr_scheduler.phase_ratio=null", "+lr_scheduler.warmup_steps=5", "+lr_scheduler.hold_steps=1000",
        "+lr_scheduler.decay_steps=1000", *PRESETS[preset],
    ]
    common = with_overrides(common, list(sizes))
    if kind == "ours":
        extra = [f"common.user_dir={REPO}/d2v_fairseq"]
    else:
        user_dir = os.path.join(workdir, "d2v_reference")
        os.makedirs(user_dir, exist_ok=True)
        with open(os.path.join(user_dir, "__init__.py"), "w") as f:
            f.write("import fairseq.examples.data2vec.models.data2vec_audio  # noqa: F401\n")
        extra = [f"common.user_dir={user_dir}", "task._name=audio_pretraining", "criterion._name=model",
                 "~criterion.var_check_after_updates", "+criterion.log_keys=[ema_decay,target_var,pred_var]"]
    result = train_once(kind, ["--config-dir", CONFIG_DIR, "--config-name", "tiny_cpu", *common, *extra],
                        workdir, updates)
    result["samples_per_s"] = result["bsz"] * updates / result["train_s"]
    return result


def stage_breakdown(preset: str, steps: int = 5) -> None:
    """Times the stages of our update on a demo-sized batch (8 x 48000 samples)."""
    import torch
    from fairseq.dataclass.configs import FairseqConfig
    from omegaconf import OmegaConf

    import d2v_fairseq  # noqa: F401
    from d2v_fairseq.models.data2vec_audio import Data2VecAudioConfig, Data2VecAudioModel
    from d2v_fairseq.modules.regression import regression_loss

    tiny = OmegaConf.load(os.path.join(CONFIG_DIR, "tiny_cpu.yaml")).model
    overrides = {k.split("=", 1)[0][len("model."):]: k.split("=", 1)[1].strip("'") for k in PRESETS[preset]}
    root = OmegaConf.structured(FairseqConfig)
    root.model = OmegaConf.merge(OmegaConf.structured(Data2VecAudioConfig),
                                 {k: v for k, v in tiny.items() if k != "_name"}, overrides)
    for key in ("encoder_embed_dim", "encoder_ffn_embed_dim"):
        root.model[key] = int(root.model[key])
    torch.manual_seed(0)
    model = Data2VecAudioModel(root.model)
    source = torch.randn(8, 48000)
    totals = {}

    def tick(name, t0):
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0
        return time.perf_counter()

    for step in range(steps + 1):
        if step == 1:
            totals.clear()
        model.set_num_updates(step)
        t = time.perf_counter()
        t_all = t
        model.set_num_updates(step + 1)
        t = tick("teacher EMA step", t)
        features, padding = model.embed(source, None)
        t = tick("conv front end (forward)", t)
        x, mask = model.mask(features, padding)
        t = tick("masking", t)
        x = model.encode_student(x, padding)
        t = tick("student Transformer (forward)", t)
        target = model.make_targets(features, padding)
        t = tick("teacher targets (forward)", t)
        loss = regression_loss(model.final_proj(x[mask]), target[mask], 0.0).sum()
        t = tick("head + loss", t)
        loss.backward()
        t = tick("backward (all)", t)
        model.zero_grad()
        totals["total"] = totals.get("total", 0.0) + time.perf_counter() - t_all
    print(f"\nwhere our update's time goes ({preset}, batch 8 x 48000 samples, mean of {steps}):")
    for name, value in totals.items():
        print(f"  {name:32s} {value / steps * 1000:8.1f} ms  {100 * value / totals['total']:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--data", default=os.path.join(REPO, "work", "demo", "corpus"))
    parser.add_argument("--skip-stages", action="store_true")
    args = parser.parse_args()
    from d2v_fairseq.demos.speech_corpus import build_corpus

    build_corpus(args.data)
    with tempfile.TemporaryDirectory() as workdir:
        results = {kind: run(kind, args.data, args.updates, args.preset, workdir) for kind in ("reference", "ours")}
    print_table(f"pre-training speed, preset {args.preset}, {args.updates} updates, demo corpus, "
                f"{os.cpu_count()} CPU threads", results, "samples_per_s")
    if not args.skip_stages:
        stage_breakdown(args.preset)


if __name__ == "__main__":
    main()
