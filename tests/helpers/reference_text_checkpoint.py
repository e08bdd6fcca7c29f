"""Writes a checkpoint in the released format with the data2vec_text model that ships inside
the installed fairseq (imported, never copied), plus the reference's features on fixed tokens.

    python reference_text_checkpoint.py OUT_DIR [HEAD_LAYERS]

The bundled module does not import on Python 3.11 as it is (``transformer: TransformerConfig =
TransformerConfig()`` is a mutable dataclass default); this helper loads its source with that
one line given a default_factory, at import time, in its own process (the reference registers
the model name ``data2vec_text`` too).
OUT_DIR/checkpoint.pt: {"cfg", "model"} as fairseq saves them (teacher under "encoder._ema");
OUT_DIR/dict.txt: the masked_lm dictionary; OUT_DIR/io.pt: tokens, student features,
teacher per-block FFN outputs.
"""

import importlib.util
import os
import sys

import torch
from fairseq.data import Dictionary
from fairseq.dataclass.configs import FairseqConfig
from omegaconf import OmegaConf

import fairseq.examples.data2vec.models as reference_package

MUTABLE = "transformer: TransformerConfig = TransformerConfig()"


def import_reference():
    path = os.path.join(os.path.dirname(reference_package.__file__), "data2vec_text.py")
    source = open(path).read()
    assert MUTABLE in source, "the bundled data2vec_text changed; update this helper"
    source = source.replace(MUTABLE, "transformer: TransformerConfig = field(default_factory=TransformerConfig)")
    spec = importlib.util.spec_from_loader("reference_data2vec_text", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, path, "exec"), module.__dict__)
    return module


class Task:
    def __init__(self, dictionary, data):
        self.source_dictionary = dictionary
        self.cfg = OmegaConf.create({"data": data})


def main(out_dir: str, head_layers: int = 2) -> None:
    reference = import_reference()
    dictionary = Dictionary()
    for i in range(40):
        dictionary.add_symbol(f"w{i}", n=100 - i)
    dictionary.save(os.path.join(out_dir, "dict.txt"))
    dictionary.add_symbol("<mask>")
    torch.manual_seed(0)
    cfg = OmegaConf.structured(FairseqConfig)
    cfg.task = OmegaConf.create({"_name": "masked_lm", "data": out_dir, "tokens_per_sample": 32,
                                 "include_target_tokens": True})
    cfg.optimization.max_update = 100
    body = {"encoder": {"embed_dim": 32, "ffn_embed_dim": 64, "layers": 3, "attention_heads": 4,
                        "learned_pos": True}, "max_source_positions": 32, "layernorm_embedding": True,
            "no_scale_embedding": True, "activation_fn": "gelu",
            "decoder": {"input_dim": 512, "output_dim": 512}}  # placeholders that do not resolve in this wheel
    cfg.model = OmegaConf.merge(OmegaConf.structured(reference.Data2VecTextConfig),
                                {"head_layers": head_layers, "average_top_k_layers": 2, "layer_norm_target_layer": True,
                                 "loss_beta": 4, "loss_scale": 1, "transformer": body})
    cfg.model._name = "data2vec_text"
    model = reference.Data2VecTextModel.build_model(cfg.model, Task(dictionary, out_dir))
    model.encoder.make_ema_teacher()
    # a teacher that differs from the student in its blocks, as after training
    with torch.no_grad():
        for name, p in model.encoder.ema.model.named_parameters():
            if name.startswith("layers."):
                p.add_(torch.randn_like(p) * 0.05)
    model.encoder.ema.build_fp32_params()
    model.eval()
    model.encoder.ema.model.eval()  # not a submodule: eval() does not reach it (the reference's forward does this)
    tokens = torch.randint(dictionary.nspecial, len(dictionary) - 1, (2, 12))
    tokens[:, 0], tokens[:, -1] = dictionary.bos(), dictionary.eos()
    tokens[1, 9:] = dictionary.pad()
    with torch.no_grad():
        features, _ = model(tokens, features_only=True)
        teacher = model.encoder.ema.model(tokens, return_all_hiddens=True)["fc_results"]
        head_in = torch.randn(5, 32, generator=torch.Generator().manual_seed(1))
        head_out = model.encoder.regression_head(head_in)
    torch.save({"cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "model": model.state_dict(),
                "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {}, "num_updates": 0}], "extra_state": {}},
               os.path.join(out_dir, "checkpoint.pt"))
    torch.save({"tokens": tokens, "features": features, "teacher_ffn": [y.transpose(0, 1) for y in teacher],
                "head_in": head_in, "head_out": head_out},
               os.path.join(out_dir, "io.pt"))


if __name__ == "__main__":
    main(sys.argv[1], *[int(v) for v in sys.argv[2:3]])
