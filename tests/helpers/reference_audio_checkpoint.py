"""Writes a checkpoint in the released format with the data2vec_audio model that ships inside
the installed fairseq (imported, never copied), plus the reference's outputs on fixed inputs.

    python reference_audio_checkpoint.py OUT_DIR

Run in its own process: the reference registers the model name ``data2vec_audio`` too.
OUT_DIR/checkpoint.pt: {"cfg", "model"} as fairseq saves them (teacher under model["_ema"]).
OUT_DIR/io.pt: source, padding_mask, mask_indices, features (student, unmasked), loss.
"""

import os
import sys

import torch
from fairseq.dataclass.configs import FairseqConfig
from omegaconf import OmegaConf

import fairseq.examples.data2vec.models.data2vec_audio as reference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # a script run by path: find tiny.py
from tiny import TINY_AUDIO  # noqa: E402



def main(out_dir: str) -> None:
    torch.manual_seed(0)
    cfg = OmegaConf.structured(FairseqConfig)
    cfg.model = OmegaConf.merge(OmegaConf.structured(reference.Data2VecAudioConfig), TINY_AUDIO)
    cfg.model._name = "data2vec_audio"
    cfg.optimization.max_update = 100
    cfg.task = OmegaConf.create({"_name": "audio_pretraining", "data": out_dir, "normalize": True})
    model = reference.Data2VecAudioModel(cfg.model)
    model.make_ema_teacher()
    # make the teacher differ from the student, as after training; the reference copies the
    # student's positional conv into its teacher at every step, so that part stays equal
    with torch.no_grad():
        for name, p in model.ema.model.named_parameters():
            if not name.startswith("pos_conv"):
                p.add_(torch.randn_like(p) * 0.05)
    model.ema.build_fp32_params()
    model.eval()

    source = torch.randn(2, 4000)
    padding_mask = torch.zeros(2, 4000, dtype=torch.bool)
    padding_mask[1, 3000:] = True
    with torch.no_grad():
        features = model.extract_features(source, padding_mask, mask=False)["x"]
        T = features.size(1)
        mask_indices = torch.zeros(2, T, dtype=torch.bool)
        mask_indices[:, 2:9] = True
        mask_indices[0, 15:20] = True
        out = model(source, padding_mask, mask_indices=mask_indices)
    torch.save(
        {"cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "model": model.state_dict(),
         "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam", "lr_scheduler_state": {}, "num_updates": 0}], "extra_state": {}},
        f"{out_dir}/checkpoint.pt",
    )
    torch.save(
        {"source": source, "padding_mask": padding_mask, "mask_indices": mask_indices,
         "features": features, "loss": out["losses"]["regression"]},
        f"{out_dir}/io.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1])
