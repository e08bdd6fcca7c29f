"""Loads a checkpoint with fairseq's own code only: the data2vec_audio model that ships inside the
installed fairseq, fairseq's checkpoint loader (strict) and its audio_pretraining task; prints the
class and saves the student's features on the inputs of IO_PT.

    python reference_reads.py CHECKPOINT IO_PT OUT_PT

Run in its own process, without d2v_fairseq imported: the reference registers data2vec_audio.
"""

import sys

import torch
from fairseq import checkpoint_utils

import fairseq.examples.data2vec.models.data2vec_audio  # noqa: F401  (registers the reference model)


def main(checkpoint: str, io_path: str, out_path: str) -> None:
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], strict=True)
    model = models[0].eval()
    io = torch.load(io_path)
    with torch.no_grad():
        features = model.extract_features(io["source"], io["padding_mask"], mask=False)["x"]
    torch.save({"features": features, "task": type(task).__name__, "ema": model.ema is not None}, out_path)
    print(type(model).__module__, type(model).__name__, type(task).__name__)


if __name__ == "__main__":
    main(*sys.argv[1:4])
