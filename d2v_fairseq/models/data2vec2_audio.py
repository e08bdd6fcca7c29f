"""``data2vec2_audio``: the speech-only layout of data2vec 2.0 (wav2vec-style keys), read as ``data2vec_multi``.

The package's one data2vec 2.0 model is ``data2vec_multi`` (``data2vec_multi.py``). Checkpoints of
the earlier speech-only model (v1's wav2vec-style parameter names plus ALiBi and a conv decoder)
still load under their name: the config converts field by field (``multi_config``), the weights by
renames (``multi_state``: q/k/v fused into ``qkv``, the per-head ALiBi scale reshaped), the
teacher's too, and the model built is a ``data2vec_multi`` speech model. Features equal the
speech-only model's on unpadded input (that model zeroed padded frames before its positional conv).

What does not carry over: the speech-only decoder skipped the residual around its first layer even
when that layer kept the width (the released decoder adds it), so continued pre-training of a
converted model whose decoder is as wide as the model starts with a slightly different decoder.
"""

import re
from dataclasses import dataclass, field
from typing import Dict

import torch
from fairseq.models import register_model
from omegaconf import OmegaConf

from .config import shared_default
from .data2vec_audio import Data2VecAudioConfig
from ..modules.ema import EMA_KEY, LEGACY_UPDATES_KEY
from .data2vec_multi import Data2VecMultiModel
from .multi_config import Data2VecMultiConfig, Modality


@dataclass
class Data2Vec2AudioConfig(Data2VecAudioConfig):
    """v1's speech fields plus 2.0's; the defaults are the released speech Base recipe."""

    clone_batch: int = field(default=8, metadata={"help": "masked copies of each sample per teacher pass"})
    mask_prob: float = field(default=0.5, metadata={"help": "fraction of frames masked in every copy (exactly)"})
    mask_length: int = field(default=5, metadata={"help": "frames per mask span"})
    mask_noise_std: float = field(
        default=0.01, metadata={"help": "std of the noise the decoder sees at masked frames"}
    )
    decoder_dim: int = field(default=384, metadata={"help": "channels of the conv decoder"})
    decoder_layers: int = field(default=4, metadata={"help": "conv layers of the decoder"})
    decoder_kernel: int = field(default=7, metadata={"help": "kernel size of the decoder convs (odd)"})
    decoder_groups: int = field(default=16, metadata={"help": "groups of the decoder convs"})
    decoder_input_dropout: float = field(
        default=0.1, metadata={"help": "dropout on the student's outputs before the decoder"}
    )
    use_alibi: bool = field(
        default=True, metadata={"help": "add ALiBi attention biases (the release's speech models do)"}
    )
    alibi_scale_init: float = field(default=1.0, metadata={"help": "initial per-head ALiBi scale"})
    learned_alibi_scale: bool = field(default=True, metadata={"help": "learn the per-head ALiBi scale"})
    # 2.0 release values that differ from v1's
    ema_end_decay: float = shared_default("ema_end_decay", 0.99999)
    ema_anneal_end_step: int = shared_default("ema_anneal_end_step", 75000)
    # false: the teacher keeps its own EMA positional conv (the 2.0 release)
    ema_layers_only: bool = shared_default("ema_layers_only", False)
    conv_pos_groups: int = field(default=16, metadata={"help": "groups of the positional conv"})




def multi_config(old) -> Dict:
    """A ``data2vec2_audio`` (speech-only 2.0 layout) model config -> the equal ``data2vec_multi`` config (a dict)."""
    get = (lambda key, default=None: old.get(key, default)) if hasattr(old, "get") else (
        lambda key, default=None: getattr(old, key, default))
    if get("layer_norm_first", False):
        raise ValueError("data2vec2_audio with layer_norm_first=true: its pre-LN blocks have no data2vec_multi form")
    if get("target_feature", "ffn") not in ("ffn", "block"):
        raise ValueError(f"data2vec2_audio with target_feature={get('target_feature')}: data2vec_multi regresses "
                         "the FFN output or the block output")
    if get("teacher_attention_window", 0):
        raise ValueError("data2vec2_audio with a teacher attention window: data2vec_multi's teacher sees everything")
    dim = get("encoder_embed_dim")
    decoder = {"decoder_dim": get("decoder_dim"), "decoder_layers": get("decoder_layers"),
               "decoder_kernel": get("decoder_kernel"), "decoder_groups": get("decoder_groups"),
               "input_dropout": get("decoder_input_dropout")}
    audio = {"feature_encoder_spec": get("conv_feature_layers"), "extractor_mode": get("extractor_mode"),
             "conv_pos_width": get("conv_pos"), "conv_pos_depth": get("pos_conv_depth"),
             "conv_pos_groups": get("conv_pos_groups"), "prenet_depth": 0, "prenet_dropout": 0.0,
             "mask_prob": get("mask_prob"), "mask_length": get("mask_length"), "mask_noise_std": get("mask_noise_std"),
             "mask_channel_prob": get("mask_channel_prob", 0.0), "mask_channel_length": get("mask_channel_length", 64),
             "local_grad_mult": get("feature_grad_mult", 1.0), "use_alibi_encoder": get("use_alibi"),
             "alibi_scale": get("alibi_scale_init"), "learned_alibi_scale": get("learned_alibi_scale"),
             "learned_alibi_scale_per_head": True, "decoder": decoder,
             "num_alibi_heads": get("encoder_attention_heads"), "model_depth": get("encoder_layers")}
    cfg = {"depth": get("encoder_layers"), "embed_dim": dim, "num_heads": get("encoder_attention_heads"),
           "mlp_ratio": get("encoder_ffn_embed_dim") / dim, "norm_eps": 1e-5, "layerdrop": get("encoder_layerdrop"),
           "encoder_dropout": get("dropout"), "post_mlp_drop": get("dropout"),
           "attention_dropout": get("attention_dropout"), "activation_dropout": get("activation_dropout"),
           "dropout_input": get("dropout_input"), "clone_batch": get("clone_batch"),
           "average_top_k_layers": get("average_top_k_layers"),
           "end_of_block_targets": get("target_feature", "ffn") == "block",
           "loss_beta": get("loss_beta"), "loss_scale": get("loss_scale"),
           "ema_decay": get("ema_decay"), "ema_end_decay": get("ema_end_decay"),
           "ema_anneal_end_step": get("ema_anneal_end_step"), "ema_encoder_only": bool(get("ema_layers_only")),
           "supported_modality": "AUDIO", "seed": get("seed", 1), "max_update": get("ema_anneal_end_step"),
           "modalities": {"audio": audio}}
    for key in ("instance_norm_target_layer", "layer_norm_target_layer", "batch_norm_target_layer",
                "instance_norm_targets", "layer_norm_targets"):
        cfg[key] = bool(get(key, False))
    return cfg


RENAMES = [  # speech-only-layout key (regex) -> data2vec_multi key, student
    (r"feature_extractor\.(.*)", r"modality_encoders.AUDIO.local_encoder.\1"),
    (r"layer_norm\.(weight|bias)", r"modality_encoders.AUDIO.project_features.1.\1"),
    (r"post_extract_proj\.(weight|bias)", r"modality_encoders.AUDIO.project_features.2.\1"),
    (r"encoder\.layer_norm\.(weight|bias)", r"modality_encoders.AUDIO.context_encoder.norm.\1"),
    (r"decoder\.convs\.(\d+)\.(weight|bias)", r"modality_encoders.AUDIO.decoder.blocks.\1.0.\2"),
    (r"decoder\.proj\.(weight|bias)", r"modality_encoders.AUDIO.decoder.proj.\1"),
    (r"alibi\.scale", r"modality_encoders.AUDIO.alibi_scale"),
]
BLOCK_RENAMES = {"self_attn.out_proj": "attn.proj", "self_attn_layer_norm": "norm1", "fc1": "mlp.fc1",
                 "fc2": "mlp.fc2", "final_layer_norm": "norm2"}


def _rename(key: str, teacher: bool) -> str:
    if teacher:  # the speech-only teacher's keys are relative to its scope: layers, layer_norm, pos_conv, alibi
        key = re.sub(r"^(layers|pos_conv|layer_norm)\.", r"encoder.\1.", key)
    match = re.fullmatch(r"encoder\.pos_conv\.(\d+)\.(.*)", key)
    if match:
        return f"modality_encoders.AUDIO.relative_positional_encoder.{int(match.group(1)) + 1}.{match.group(2)}"
    match = re.fullmatch(r"encoder\.layers\.(\d+)\.(.*)\.(weight|bias)", key)
    if match and match.group(2) in BLOCK_RENAMES:
        return f"blocks.{match.group(1)}.{BLOCK_RENAMES[match.group(2)]}.{match.group(3)}"
    for pattern, replacement in RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    return key


def _convert(weights: Dict[str, torch.Tensor], teacher: bool) -> Dict[str, torch.Tensor]:
    out = {}
    layer = re.compile(r"(encoder\.)?layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")
    fused: Dict[tuple, Dict[str, torch.Tensor]] = {}
    for key, value in weights.items():
        match = layer.fullmatch(key)
        if match:
            fused.setdefault((match.group(2), match.group(4)), {})[match.group(3)] = value
            continue
        new = _rename(key, teacher)
        if new.endswith("alibi_scale"):
            value = value.reshape(1, 1, -1, 1, 1)
        out[new] = value
    for (index, kind), parts in fused.items():
        out[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def is_wav2vec_layout(state: Dict) -> bool:
    return any(key.startswith(("encoder.layers.", "feature_extractor.")) for key in state)


def multi_state(state: Dict[str, torch.Tensor], ema_encoder_only: bool = False) -> Dict[str, torch.Tensor]:
    """A ``data2vec2_audio`` (speech-only 2.0 layout) state dict (student + ``_ema``) -> data2vec_multi's keys. With
    ``ema_encoder_only`` (the speech-only layout.s ``ema_layers_only``) the teacher holds the blocks alone, keyed
    without ``blocks.``; its saved layer norm and ALiBi scale are then the student's."""
    out = _convert({k: v for k, v in state.items() if k not in (EMA_KEY, LEGACY_UPDATES_KEY, "mask_emb")}, teacher=False)
    if EMA_KEY in state:
        teacher = _convert(state[EMA_KEY], teacher=True)
        if ema_encoder_only:
            teacher = {k[len("blocks."):]: v for k, v in teacher.items() if k.startswith("blocks.")}
        out[EMA_KEY] = teacher
    return out


@register_model("data2vec2_audio", dataclass=Data2Vec2AudioConfig)
class Data2Vec2AudioModel(Data2VecMultiModel):
    """A ``data2vec2_audio`` (speech-only 2.0 layout) checkpoint as the ``data2vec_multi`` speech model (see the
    module docstring); its weights convert on load."""

    depth_key = "model.encoder_layers"

    @classmethod
    def build_model(cls, cfg: Data2Vec2AudioConfig, task=None):
        converted = OmegaConf.merge(OmegaConf.structured(Data2VecMultiConfig), multi_config(cfg))
        return cls(converted, [Modality.AUDIO], task=task)

    def load_state_dict(self, state_dict, strict: bool = True, model_cfg=None, args=None):
        if is_wav2vec_layout(state_dict):
            state_dict = multi_state(state_dict, self.cfg.ema_encoder_only)
        return super().load_state_dict(state_dict, strict=strict)

    def upgrade_state_dict_named(self, state_dict, name):
        """Inside another model (a speech-only-layout CTC checkpoint: ``w2v_encoder.w2v_model.*``), fairseq
        calls this with the whole state dict before loading it: the keys under ``name`` convert."""
        prefix = f"{name}." if name else ""
        mine = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        if prefix and is_wav2vec_layout(mine):
            converted = multi_state({k: state_dict.pop(full) for k, full in mine.items()}, self.cfg.ema_encoder_only)
            state_dict.update({prefix + k: v for k, v in converted.items()})
        return super().upgrade_state_dict_named(state_dict, name)
