"""data2vec_vision pre-training speed on CPU: images/s and peak memory of the tiny config and of
ViT-B/16 at a small batch, with the share of a step spent in attention, MLP, EMA and augmentation.

    python bench/vision_speed.py [--steps 4] [--base-batch 8]

Each configuration runs in its own process (so its peak RSS is its own): a folder of random
JPEGs is decoded and augmented by the package's ImageFolderDataset, then full training steps
(student forward/backward with masks, teacher targets, Adam, EMA step) are timed. The shares
time the same modules alone on the step's shapes: every block's attention and MLP (forward +
backward for the student, forward for the teacher), the EMA update, the block masks, and the batch's
decoding and augmentation; "other" is the rest of the step (patch embedding, norms, loss, optimizer).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CONFIGS = {
    "tiny": dict(image_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, num_mask_patches=0,
                 average_top_k_layers=3, layer_scale_init_value=0.1, drop_path=0.1),
    "ViT-B/16": dict(image_size=224, patch_size=16),
}


def timed(fn, repeat: int) -> float:
    """Mean seconds of ``fn()`` over ``repeat`` calls, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def measure(name: str, batch: int, steps: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from d2v_fairseq.data.images import ImageFolderDataset, prepare
    from d2v_fairseq.models.data2vec_vision import Data2VecVisionConfig, Data2VecVisionModel

    torch.manual_seed(0)
    cfg = Data2VecVisionConfig(seed=1, **CONFIGS[name])
    size = cfg.image_size
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        os.makedirs(os.path.join(tmp, "img", "train", "x"))
        side = max(size * 8 // 7, 36)  # a little larger than the crop, as ImageNet's ~400 px are
        for i in range(batch):
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(
                os.path.join(tmp, "img", "train", "x", f"{i}.jpg"), quality=90)
        prepare(os.path.join(tmp, "img"), os.path.join(tmp, "m"), ("train",))
        dataset = ImageFolderDataset(os.path.join(tmp, "m", "train.tsv"), size, train=True)
        augmentation_s = timed(lambda: dataset.collater([dataset[i] for i in range(batch)]), steps)
        images = dataset.collater([dataset[i] for i in range(batch)])["net_input"]["source"]

    model = Data2VecVisionModel(cfg).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    update = [0]

    def step():
        update[0] += 1
        model.set_num_updates(update[0])  # the EMA step happens here, as in fairseq
        loss = model(images, sample_ids=torch.arange(batch))["losses"]["regression"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step_s = timed(step, steps)
    ema_s = timed(lambda: model.teacher.step(model.teacher_scope(), 0.9998), steps)
    with torch.no_grad():
        features, _ = model.embed(images)
    masking_s = timed(lambda: model.mask(features, None, torch.arange(batch)), steps)

    tokens = 1 + model.patch_embed.num_patches
    x = torch.randn(batch, tokens, cfg.embed_dim, requires_grad=True)
    block = model.encoder.blocks[0]
    bias = model.encoder.rel_pos_bias().detach()

    def fwd_bwd(fn):
        def run():
            fn().sum().backward()
        return run

    def fwd(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    attention_s = cfg.depth * (timed(fwd_bwd(lambda: block.attn(block.norm1(x), bias)), steps)
                               + timed(fwd(lambda: block.attn(block.norm1(x), bias)), steps))
    mlp_s = cfg.depth * (timed(fwd_bwd(lambda: block.mlp(block.norm2(x))), steps)
                         + timed(fwd(lambda: block.mlp(block.norm2(x))), steps))
    total = step_s + augmentation_s
    return {
        "config": name, "batch": batch, "images_per_s": batch / total, "step_s": step_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "share": {"attention": attention_s / total, "mlp": mlp_s / total, "ema": ema_s / total,
                  "masking": masking_s / total, "augmentation": augmentation_s / total,
                  "other": max(0.0, 1 - (attention_s + mlp_s + ema_s + masking_s + augmentation_s) / total)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tiny-batch", type=int, default=64)
    parser.add_argument("--base-batch", type=int, default=8)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("BENCH_RESULT " + json.dumps(measure(args.one, args.batch, args.steps)))
        return
    results = []
    for name, batch in (("tiny", args.tiny_batch), ("ViT-B/16", args.base_batch)):
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--batch", str(batch), "--steps", str(args.steps)],
                              capture_output=True, text=True)
        line = [l for l in proc.stdout.splitlines() if l.startswith("BENCH_RESULT ")]
        if proc.returncode != 0 or not line:
            raise SystemExit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        results.append(json.loads(line[0].split(" ", 1)[1]))
    print(f"\ndata2vec_vision pre-training on CPU ({os.cpu_count()} cores, torch threads default)")
    print(f"{'config':10s}{'batch':>6s}{'images/s':>10s}{'peak RSS MB':>13s}"
          f"{'attention':>11s}{'MLP':>7s}{'EMA':>7s}{'masking':>9s}{'augment':>9s}{'other':>7s}")
    for r in results:
        s = r["share"]
        print(f"{r['config']:10s}{r['batch']:6d}{r['images_per_s']:10.1f}{r['peak_rss_mb']:13.0f}"
              f"{s['attention']:10.0%} {s['mlp']:6.0%} {s['ema']:6.0%} {s['masking']:8.0%} {s['augmentation']:8.0%} {s['other']:6.0%}")


if __name__ == "__main__":
    main()
