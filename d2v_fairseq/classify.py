"""Top-1 and top-5 accuracy of a fine-tuned image classifier on a folder or manifest.

    python -m d2v_fairseq.classify CHECKPOINT FOLDER_OR_MANIFEST [--classes classes.txt]

FOLDER holds CLASS/IMAGE files (one split of the ImageNet layout); its class names are matched
to the labels through ``classes.txt`` (default: the one beside the checkpoint's training
manifests). A ``.tsv`` manifest of ``python -m d2v_fairseq.data.images`` is read as it is.
"""

import argparse
import logging
import os
import tempfile
from typing import Dict, Optional

import torch

from .data.images import ImageDataError, ImageFolderDataset, read_classes, scan_split, write_manifest


@torch.no_grad()
def evaluate(checkpoint: str, source: str, classes_file: Optional[str] = None, batch_size: int = 64) -> Dict:
    """{"top1", "top5" (percent), "n", "per_class" (top-1 per class name)} of ``checkpoint`` on
    ``source`` (a folder of CLASS/IMAGE or a manifest)."""
    from .checkpoint import load_pretrained

    logging.getLogger("PIL").setLevel(logging.INFO)  # its per-chunk DEBUG lines would flood the output
    model, cfg, task = load_pretrained(checkpoint)
    model.eval()
    classes_file = classes_file or os.path.join(cfg.task.data, "classes.txt")
    classes = read_classes(classes_file) if os.path.isfile(classes_file) else None
    with tempfile.TemporaryDirectory() as tmp:
        manifest = source
        if os.path.isdir(source):
            if classes is None:
                raise ImageDataError(f"{classes_file}: missing; pass --classes to match {source}'s folders to labels")
            _, entries = scan_split(source, classes)
            manifest = os.path.join(tmp, "eval.tsv")
            write_manifest(manifest, source, entries)
        dataset = ImageFolderDataset(manifest, cfg.task.image_size, train=False, num_classes=task.num_classes())
        logits, labels = [], []
        for start in range(0, len(dataset), batch_size):
            batch = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            logits.append(model(**batch["net_input"]))
            labels.append(batch["label"])
    logits, labels = torch.cat(logits), torch.cat(labels)
    top5 = logits.topk(min(5, logits.size(-1)), dim=-1).indices
    top1_hit = top5[:, 0] == labels
    per_class = {}
    for label in labels.unique().tolist():
        name = classes[label] if classes else str(label)
        per_class[name] = 100.0 * top1_hit[labels == label].float().mean().item()
    return {"top1": 100.0 * top1_hit.float().mean().item(),
            "top5": 100.0 * (top5 == labels[:, None]).any(-1).float().mean().item(),
            "n": labels.numel(), "per_class": per_class}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("source", help="folder of CLASS/IMAGE files, or a SPLIT.tsv manifest")
    parser.add_argument("--classes", help="classes.txt (default: beside the checkpoint's training manifests)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    try:
        result = evaluate(args.checkpoint, args.source, args.classes, args.batch_size)
    except ImageDataError as error:
        raise SystemExit(f"error: {error}")
    print(f"{args.source}: {result['n']} images, top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%")


if __name__ == "__main__":
    main()
