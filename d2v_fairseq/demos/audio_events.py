"""The audio-events demo (``make demo-audio-events``): AudioSet-style tagging on real sounds.

1. mixtures of 1-3 real recordings from Debian's ``sound-theme-freedesktop`` (bell, alarm
   clock, camera shutter, phone ringing, ...) at random offsets, gains and speeds over noise,
   2-second 16 kHz clips labeled with the sounds present (``data/sound_events.py``);
2. pre-train a tiny data2vec_audio on unlabeled mixtures (configs/audio/pretraining/tiny_cpu.yaml);
3. fine-tune the tagger (configs/audio/classification/tiny_cpu.yaml: frozen front end,
   linear-softmax pooling, BCE) on a small labeled set from the pre-trained model and, at the
   same budget, from random initialization (``--seeds N``: N fine-tuning seeds each);
4. print mAP of both on held-out mixtures (with several seeds, their mean and each seed's).

    d2v demo audio-events --work work/demo-audio-events

Every stage reuses what an earlier run built.
"""

import functools
import os
import time
from typing import Dict, Sequence

from ..evaluation import evaluate_tags
from .common import finetune_seeds, hydra_train, print_seed_comparison, stage
from .sound_events import build_corpus


def run_demo(work: str = "work/demo-audio-events", pretrain_updates: int = 600, finetune_updates: int = 300,
             labeled: int = 200, seeds: int = 1, pretraining: str = "tiny_cpu",
             pretrain_overrides: Sequence[str] = (), finetune_overrides: Sequence[str] = ()) -> Dict:
    """Runs the demo (see the module docstring) in ``work``; returns {starting point: scores
    per fine-tuning seed}."""
    work = os.path.abspath(work)
    data = os.path.join(work, "data")
    start = time.time()

    stage("1/4 mixtures of freedesktop sounds -> 2-second 16 kHz clips, labels = the sounds present")
    if os.path.isfile(os.path.join(data, "classes.txt")):
        print(f"  reusing {data}")
    else:
        counts = {"pretrain": 1600, "train": labeled, "valid": 150, "test": 400}
        build_corpus(data, counts)
        print("  " + ", ".join(f"{s} {n}" for s, n in counts.items()) + " clips")
    with open(os.path.join(data, "classes.txt")) as f:
        classes = len(f.read().split())

    stage(f"2/4 data2vec_audio pre-training on the unlabeled mixtures, {pretrain_updates} updates")
    pre_dir = os.path.join(work, "pretrain")
    hydra_train("pretraining", pre_dir, pretrain_updates,
                [f"task.data={data}", "dataset.train_subset=pretrain", "dataset.valid_subset=valid",
                 "task.min_sample_size=16000", *pretrain_overrides], os.path.join(work, "pretrain.log"),
                config_name=pretraining)
    pretrained = os.path.join(pre_dir, "checkpoint_last.pt")

    def finetune(random_init: bool, save_dir: str, log_path: str, seed: int) -> None:
        hydra_train("classification", save_dir, finetune_updates,
                    [f"task.data={data}", f"model.model_path={pretrained}",
                     f"model.no_pretrained_weights={str(random_init).lower()}", f"common.seed={seed}",
                     *finetune_overrides], log_path)

    what = f"the tagger on {labeled} labeled clips, {finetune_updates} updates"
    runs = {name: finetune_seeds(work, name, seeds, what, functools.partial(finetune, random_init),
                                 lambda checkpoint: evaluate_tags(checkpoint, data, "test"))
            for name, random_init in (("pretrained", False), ("random init", True))}

    stage(f"4/4 held-out mixtures ({classes} sound classes); {time.time() - start:.0f} s in all")
    print_seed_comparison(runs, [("mAP", "mAP", False)], "mAP", f"{runs['pretrained'][0]['n']} test clips")
    return runs

