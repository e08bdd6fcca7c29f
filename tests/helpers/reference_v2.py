"""fairseq's own data2vec 2.0 (``examples/data2vec/models/data2vec2.py``, ``data2vec_multi``),
imported from the installed fairseq (never copied) so that tests compare against it and write
checkpoints the way it does.

It does not import here as it is; the workarounds, none of them an edit of its source:

* its modules import ``examples.*``: ``examples`` is aliased to ``fairseq.examples``;
* ``examples.data2vec.data`` is registered as a bare package, so that its ``__init__`` (which
  imports torchvision) never runs; ``examples.data2vec.data.modality`` then imports alone;
* while it imports, ``dataclasses.dataclass`` turns dataclass-instance defaults (its
  ``decoder: D2vDecoderConfig = D2vDecoderConfig()``) into ``default_factory`` (Python 3.11
  rejects them);
* a stand-in ``timm`` module with timm's names and parameter layout (``DropPath``, ``Mlp`` with
  ``fc1``/``fc2``, ``PatchEmbed`` with ``proj``, ``to_2tuple``), since timm needs torchvision;
* ``np.float`` for its image code (NumPy 2 removed it);
* it registers the name ``data2vec_multi`` too: fairseq's registry keeps the first class under
  a name, and hands that class back to the decorator, so this package's entries are set aside
  while it imports and put back after (ConfigStore node included).
"""

import copy
import dataclasses
import functools
import os
import sys
import types

import numpy as np
import torch
from fairseq.dataclass.configs import FairseqConfig
from omegaconf import OmegaConf
from torch import nn

_REFERENCE = None


def _timm_standin() -> None:
    if "timm" in sys.modules:
        return

    class DropPath(nn.Module):
        def __init__(self, drop_prob=0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1 - self.drop_prob
            return x * x.new_empty((x.size(0),) + (1,) * (x.dim() - 1)).bernoulli_(keep) / keep

    class Mlp(nn.Module):
        def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0, **_):
            super().__init__()
            hidden_features = hidden_features or in_features
            self.fc1 = nn.Linear(in_features, hidden_features)
            self.act = act_layer()
            self.drop1 = nn.Dropout(drop)
            self.fc2 = nn.Linear(hidden_features, out_features or in_features)
            self.drop2 = nn.Dropout(drop)

        def forward(self, x):
            return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))

    def to_2tuple(x):
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    class PatchEmbed(nn.Module):
        def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, **_):
            super().__init__()
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
            self.num_patches = (img_size // patch_size) ** 2

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class Block(nn.Module):  # imported by the reference's mae.py, never built here
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("timm stand-in: Block")

    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    vit = types.ModuleType("timm.models.vision_transformer")
    layers.to_2tuple, layers.DropPath = to_2tuple, DropPath
    vit.DropPath, vit.Mlp, vit.PatchEmbed, vit.Block = DropPath, Mlp, PatchEmbed, Block
    timm.models, models.layers, models.vision_transformer = models, layers, vit
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.vision_transformer": vit})


def _factory_defaults(real_dataclass):
    def patched(cls=None, **kwargs):
        def wrap(c):
            for name in list(getattr(c, "__annotations__", {})):
                value = c.__dict__.get(name)
                if dataclasses.is_dataclass(value) and not isinstance(value, type):
                    setattr(c, name, dataclasses.field(default_factory=functools.partial(copy.deepcopy, value)))
            return real_dataclass(c, **kwargs)
        return wrap if cls is None else wrap(cls)
    return patched


def reference():
    """The reference module ``examples.data2vec.models.data2vec2`` (imported once)."""
    global _REFERENCE
    if _REFERENCE is not None:
        return _REFERENCE
    import fairseq.examples
    from fairseq import models as registry
    from hydra.core.config_store import ConfigStore

    _timm_standin()
    if not hasattr(np, "float"):
        np.float = float
    # (the working tree's own examples/ folder of config links may already hold the name)
    previous = sys.modules.get("examples")
    sys.modules["examples"] = fairseq.examples
    import examples.data2vec  # noqa: F401

    data = types.ModuleType("examples.data2vec.data")
    data.__path__ = [os.path.join(os.path.dirname(fairseq.examples.__file__), "data2vec", "data")]
    sys.modules.setdefault("examples.data2vec.data", data)
    tables = ("MODEL_REGISTRY", "MODEL_DATACLASS_REGISTRY", "ARCH_MODEL_REGISTRY", "ARCH_MODEL_NAME_REGISTRY",
              "ARCH_CONFIG_REGISTRY")
    ours = {t: getattr(registry, t).pop("data2vec_multi", None) for t in tables if hasattr(registry, t)}
    inverse = registry.ARCH_MODEL_INV_REGISTRY.pop("data2vec_multi", None)
    real = dataclasses.dataclass
    dataclasses.dataclass = _factory_defaults(real)
    try:
        import examples.data2vec.models.data2vec2 as module
    finally:
        dataclasses.dataclass = real
        if previous is not None:
            sys.modules["examples"] = previous
        for table, entry in ours.items():
            if entry is not None:
                getattr(registry, table)["data2vec_multi"] = entry
        if inverse is not None:
            registry.ARCH_MODEL_INV_REGISTRY["data2vec_multi"] = inverse
        if ours.get("MODEL_DATACLASS_REGISTRY") is not None:
            node = ours["MODEL_DATACLASS_REGISTRY"]()
            ConfigStore.instance().store(name="data2vec_multi", group="model", node=node, provider="fairseq")
    _REFERENCE = module
    return module


# --- tiny configs --------------------------------------------------------------------------
TINY = {"depth": 2, "embed_dim": 64, "num_heads": 4, "average_top_k_layers": 2, "clone_batch": 2,
        "encoder_dropout": 0.0, "post_mlp_drop": 0.0, "attention_dropout": 0.0, "ema_decay": 0.9,
        "ema_end_decay": 0.99, "ema_anneal_end_step": 10, "instance_norm_target_layer": True}
TINY_MODALITY = {
    "AUDIO": {"ema_encoder_only": False, "layerdrop": 0.0,
              "modalities": {"audio": {"feature_encoder_spec": "[(32, 10, 5)] + [(32, 3, 2)] * 2 + [(32, 2, 2)]",
                                       "conv_pos_depth": 2, "conv_pos_width": 10, "conv_pos_groups": 4,
                                       "prenet_depth": 1, "use_alibi_encoder": True, "learned_alibi_scale": True,
                                       "learned_alibi_scale_per_head": True, "mask_prob": 0.5,
                                       "decoder": {"decoder_dim": 32, "decoder_groups": 4, "decoder_kernel": 3,
                                                   "decoder_layers": 2}}}},
    "IMAGE": {"ema_encoder_only": False, "cls_loss": 0.01, "layer_norm_targets": True,
              "modalities": {"image": {"input_size": 32, "patch_size": 8, "embed_dim": 64, "prenet_depth": 1,
                                       "num_extra_tokens": 1, "init_extra_token_zero": False, "inverse_mask": True,
                                       "mask_prob": 0.8, "mask_prob_adjust": 0.07, "mask_length": 2,
                                       "ema_local_encoder": True,
                                       "decoder": {"decoder_dim": 32, "decoder_groups": 4, "decoder_kernel": 3,
                                                   "decoder_layers": 2, "input_dropout": 0.0}}}},
    "TEXT": {"ema_encoder_only": True, "loss_scale": 1.0,
             "modalities": {"text": {"mask_prob": 0.48, "mask_length": 1, "prenet_depth": 0, "max_source_positions": 32,
                                     "dropout": 0.0,
                                     "decoder": {"decoder_dim": 32, "decoder_groups": 1, "decoder_kernel": 3,
                                                 "decoder_layers": 2, "decoder_residual": False,
                                                 "projection_layers": 2}}}},
}


def tiny_root(config_class, modality: str, **overrides):
    """A full fairseq config whose ``model`` is ``config_class`` with the tiny settings of
    ``modality`` (its interpolations resolve against ``optimization`` and ``common``)."""
    root = OmegaConf.structured(FairseqConfig)
    root.optimization.max_update = 20
    root.model = OmegaConf.merge(OmegaConf.structured(config_class), TINY, TINY_MODALITY[modality],
                                 {"supported_modality": modality}, overrides)
    return root


class TextTask:
    """The little of a masked_lm task the text encoder reads."""

    def __init__(self, dictionary):
        self.source_dictionary = dictionary


def tiny_dictionary(with_mask: bool = True):
    """40 words; ``with_mask``: plus ``<mask>``, as masked_lm adds it after reading dict.txt."""
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for i in range(40):
        dictionary.add_symbol(f"w{i}", n=100 - i)
    if with_mask:
        dictionary.add_symbol("<mask>")
    return dictionary


def tiny_inputs(modality: str, seed: int = 0):
    """(source, padding_mask) for the tiny models: speech (2, 4000) with the second row 3000
    samples long; images (2, 3, 32, 32); text (2, 12) tokens with the second row padded at 9."""
    g = torch.Generator().manual_seed(seed)
    if modality == "AUDIO":
        source = torch.randn(2, 4000, generator=g)
        padding = torch.zeros(2, 4000, dtype=torch.bool)
        padding[1, 3000:] = True
        source[1, 3000:] = 0
        return source, padding
    if modality == "IMAGE":
        return torch.randn(2, 3, 32, 32, generator=g), None
    d = tiny_dictionary()
    tokens = torch.randint(d.nspecial, len(d), (2, 12), generator=g)
    tokens[:, 0], tokens[:, -1] = d.bos(), d.eos()
    tokens[1, 9:] = d.pad()
    return tokens, tokens.eq(d.pad())


def build_reference(modality: str, seed: int = 0, **overrides):
    """(reference model, its root config) for a tiny ``modality`` model."""
    ref = reference()
    root = tiny_root(ref.Data2VecMultiConfig, modality, **overrides)
    torch.manual_seed(seed)
    task = TextTask(tiny_dictionary()) if modality == "TEXT" else None
    model = ref.Data2VecMultiModel.build_model(root.model, task)
    return model, root


def train_reference(model, modality: str, updates: int = 2):
    """A few Adam updates with EMA steps, so that the teacher differs from the student."""
    source, padding = tiny_inputs(modality, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for update in range(1, updates + 1):
        out = model(source, padding_mask=padding, id=torch.arange(source.size(0)))
        loss = sum(v.sum() for v in out["losses"].values()) / out["sample_size"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.set_num_updates(update)
    model.eval()
    return model


IMAGE_TASK = {"_name": "mae_image_pretraining", "data": "/checkpoint/authors/imagenet", "multi_data": None,
              "input_size": 32, "local_cache_path": "/scratch/authors/imagenet", "key": "source",
              "beit_transforms": False, "target_transform": False, "no_transform": False, "rebuild_batches": True,
              "precompute_mask_config": {}, "subsample": 1.0, "seed": 1, "dataset_type": "imagefolder"}


def write_reference_checkpoint(modality: str, path: str, data: str = "/checkpoint/authors/data") -> dict:
    """A reference-trained tiny checkpoint as fairseq's trainer saves it (cfg with enums as
    strings, the teacher under ``_ema``); returns {"model", "root"} for comparisons."""
    from fairseq.tasks.audio_pretraining import AudioPretrainingConfig
    from fairseq.tasks.masked_lm import MaskedLMConfig

    model, root = build_reference(modality)
    train_reference(model, modality)
    if modality == "AUDIO":
        root.task = OmegaConf.merge(OmegaConf.structured(AudioPretrainingConfig),
                                    {"_name": "audio_pretraining", "data": data, "normalize": True})
    elif modality == "IMAGE":
        root.task = OmegaConf.create(IMAGE_TASK)
    else:
        root.task = OmegaConf.merge(OmegaConf.structured(MaskedLMConfig),
                                    {"_name": "masked_lm", "data": data, "tokens_per_sample": 32, "d2v2_multi": True,
                                     "include_index": True, "skip_masking": True})
    root.model._name = "data2vec_multi"
    root.criterion = OmegaConf.create({"_name": "model", "log_keys": ["ema_decay", "target_var", "pred_var"]})
    torch.save({"cfg": OmegaConf.to_container(root, resolve=True, enum_to_str=True), "model": model.state_dict(),
                "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {}, "num_updates": 2}], "extra_state": {}}, path)
    return {"model": model, "root": root}
