"""data2vec 2.0 pre-training speed: this package's data2vec_multi against fairseq's own (the
reference ``examples/data2vec/models/data2vec2.py`` in the installed fairseq), on the reference's
released v2 YAMLs with the same overrides, runs interleaved (ours, reference, ours, ...).

    .venv/bin/python bench/multi_speed.py [--modality audio|image|text|all] [--updates 40] [--rounds 2]

Both run fairseq-hydra-train on one CPU process with the released YAML of the modality
(``base_{audio,images,text}_only_task``), shrunk to a small model (4 blocks of 128 dims, the
release's heads and decoders narrowed) and this machine (fp32, CPU, one process); the data
are the package's demo data (speech corpus, digits, WordNet glosses; built if missing).
The reference runs through a temporary user-dir that imports it with the import workarounds
of ``tests/helpers/reference_v2.py`` (and, for images, this package's ``mae_image_pretraining``
task: the reference's needs torchvision). Prints updates/s, samples/s and peak RSS per run, the
median of each, ours / reference, and the last logged loss of each (the two draw different
masks, so losses agree only roughly).
"""

import argparse
import os
import re
import statistics
import sys
import tempfile

from _measure import train_once, with_overrides, wordnet_text_data  # bench/ is the script's directory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASED = os.path.join(os.path.dirname(__import__("fairseq").__file__), "examples", "data2vec", "config", "v2")
SMALL = ["common.fp16=false", "common.cpu=true", "common.tensorboard_logdir=null", "common.log_format=simple",
         "common.log_interval=5", "distributed_training.distributed_world_size=1", "checkpoint.no_save=true",
         "model.depth=4", "+model.num_heads=4", "model.average_top_k_layers=4"]
RECIPES = {
    "audio": ("base_audio_only_task", [
        "dataset.max_tokens=96000", "dataset.num_workers=0", "task.min_sample_size=8000", "task.max_sample_size=48000",
        "model.embed_dim=128", "model.modalities.audio.feature_encoder_spec='[(128, 10, 5)] + [(128, 3, 2)] * 6'",
        "model.modalities.audio.conv_pos_groups=16", "model.modalities.audio.decoder.decoder_dim=128"]),
    "image": ("base_images_only_task", [
        "dataset.batch_size=32", "dataset.num_workers=0", "+task.input_size=32", "+model.modalities.image.input_size=32",
        "+model.modalities.image.patch_size=4", "+model.modalities.image.embed_dim=128", "+model.embed_dim=128",
        "model.modalities.image.prenet_depth=0", "model.modalities.image.decoder.decoder_dim=128",
        "model.modalities.image.decoder.decoder_layers=3", "model.clone_batch=8"]),
    "text": ("base_text_only_task", [
        "dataset.batch_size=16", "task.tokens_per_sample=128", "+model.modalities.text.max_source_positions=128",
        "model.embed_dim=128", "model.modalities.text.decoder.decoder_dim=128"]),
}
# the reference first (fairseq's registry keeps the first class under a name), then this
# package's image task: the reference's own needs torchvision; both read the same images
REFERENCE_INIT = f"""import sys
sys.path.insert(0, {REPO!r})
from tests.helpers.reference_v2 import reference
reference()
import d2v_fairseq.tasks.images  # noqa: F401
"""


def data_for(modality: str, work: str) -> list:
    """The task.data override (and the train subset) of the modality's demo data."""
    if modality == "audio":
        from d2v_fairseq.demos.speech_corpus import build_corpus

        path = os.path.join(work, "speech")
        if not os.path.isfile(os.path.join(path, "train.tsv")):
            build_corpus(path, train=60, valid=8, test=8, seed=3)
        return [f"task.data={path}"]
    if modality == "image":
        from d2v_fairseq.demos.vision import build_data

        return [f"task.data={build_data(os.path.join(work, 'digits'))}", "dataset.train_subset=pretrain"]
    return [f"task.data={wordnet_text_data(os.path.join(work, 'text', 'bin'), vocab_size=2000)}"]


def run(kind: str, modality: str, updates: int, work: str, data: list, sizes=()) -> dict:
    """One run of ``kind`` (ours or reference); ``sizes`` overrides replace the recipe's small ones."""
    name, overrides = RECIPES[modality]
    if kind == "ours":
        user_dir = os.path.join(REPO, "d2v_fairseq")
    else:
        user_dir = os.path.join(work, "d2v2_reference")
        os.makedirs(user_dir, exist_ok=True)
        with open(os.path.join(user_dir, "__init__.py"), "w") as f:
            f.write(REFERENCE_INIT)
    args = ["--config-dir", RELEASED, "--config-name", name, f"common.user_dir={user_dir}",
            f"checkpoint.save_dir={work}/{kind}_ckpt", f"optimization.max_update={updates}", *with_overrides([*SMALL, *overrides], list(sizes)), *data]
    result = train_once(kind, args, work, updates, keep_log=True)
    losses = re.findall(r"train_inner.*? loss=([\d.]+)", result.pop("log"))
    result["loss"] = float(losses[-1]) if losses else float("nan")
    result["samples_per_s"] = result["bsz"] * updates / result["train_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", default="all", choices=["audio", "image", "text", "all"])
    parser.add_argument("--updates", type=int, default=40, help="updates per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved (ours, reference) pairs per modality")
    parser.add_argument("--work", default=None, help="where data and runs go (default: a temporary folder)")
    args = parser.parse_args()
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="d2v-multi-speed-"))
    os.makedirs(work, exist_ok=True)
    for modality in (["audio", "image", "text"] if args.modality == "all" else [args.modality]):
        data = data_for(modality, work)
        runs = {"ours": [], "reference": []}
        for round_ in range(args.rounds):
            for kind in ("ours", "reference"):
                r = run(kind, modality, args.updates, work, data)
                runs[kind].append(r)
                print(f"{modality} round {round_ + 1} {kind:9s} {r['updates_per_s']:.3f} updates/s "
                      f"{r['samples_per_s']:.1f} samples/s  peak RSS {r['peak_rss_mb']:.0f} MB  loss {r['loss']:.3f}",
                      flush=True)
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("updates_per_s", "samples_per_s", "peak_rss_mb",
                                                                       "loss")} for k, v in runs.items()}
        o, ref = med["ours"], med["reference"]
        print(f"{modality}: median updates/s ours {o['updates_per_s']:.3f} reference {ref['updates_per_s']:.3f} "
              f"ratio {o['updates_per_s'] / ref['updates_per_s']:.3f}; peak RSS ratio "
              f"{o['peak_rss_mb'] / ref['peak_rss_mb']:.3f}; last loss ours {o['loss']:.3f} reference {ref['loss']:.3f}",
              flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
