"""``data2vec_multi``: data2vec 2.0 (Baevski et al., 2022b, "Efficient Self-supervised Learning
with Contextualized Target Representations for Vision, Speech and Language") for speech, images
and text, in fairseq's layout: the reference's config (``multi_config.py``) and parameter names,
so a checkpoint moves between fairseq's ``examples/data2vec`` and this package without renaming.

A pre-training step (``forward``):

* ``encode_student``: the modality encoder embeds the input once, repeats it ``clone_batch``
  times with a different mask per copy, keeps only the visible steps, and the shared blocks
  encode them (MAE-style: the student never sees a mask token);
* ``decode``: the modality's light conv decoder fills the masked steps with noise and predicts
  every step;
* ``make_targets`` (the EMA teacher, ``modules/ema.py``): the teacher encodes each sample once,
  unmasked; the average of its top-K block outputs (``modules/targets.py``) is repeated per copy;
* ``regress``: the loss at the masked steps (``modules/regression.py``), plus the CLS loss for
  images; returned as fairseq's ``model`` criterion reads it ({"losses", "sample_size", logs}).

``extract_features`` runs the student unmasked (fine-tuning, features).
"""

import logging
from typing import Dict, List, Optional

import numpy as np
import torch
from fairseq.models import BaseFairseqModel, register_model
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from torch import nn

from ..modules.ema import EMA_KEY, EMATeacher, TeacherOwner
from ..modules.errors import ModelConfigError
from ..modules.multi_layers import Block, run_alibi_blocks, scaled_bias
from ..modules.regression import (
    check_collapse,
    checked_loss_scale,
    feature_std,
    regression_loss,
)
from ..modules.targets import build_targets, check_top_k, target_norms
from .multi_config import Data2VecMultiConfig, Modality
from .multi_encoders import ENCODERS, MaskSeeds, ModalityEncoder, view_without

logger = logging.getLogger(__name__)

# a key some released speech checkpoints carry (wav2vec fine-tuning's mask embedding): unused here
STRAY_KEYS = ("encoder_mask",)


def modality_of(value) -> Modality:
    """A Modality from its name (any case) or the enum itself."""
    if isinstance(value, Modality):
        return value
    name = getattr(value, "name", value)
    try:
        return Modality[str(name).upper()]
    except KeyError:
        raise ValueError(f"modality {value!r}: choose AUDIO, IMAGE or TEXT") from None


@register_model("data2vec_multi", dataclass=Data2VecMultiConfig)
class Data2VecMultiModel(TeacherOwner, BaseFairseqModel):
    """data2vec 2.0; see the module docstring."""

    depth_key = "model.depth"  # the config key of the number of blocks, as errors name it

    def __init__(self, cfg: Data2VecMultiConfig, modalities: List[Modality], task=None, skip_ema: bool = False):
        super().__init__()
        self.cfg = cfg
        self.modalities = [modality_of(m) for m in modalities]
        if cfg.shared_decoder is not None:
            raise ModelConfigError("model config: shared_decoder is not supported by this package's data2vec_multi "
                             "(each modality has its own decoder: modalities.*.decoder)")
        if cfg.recon_loss > 0:
            raise ModelConfigError("model config: recon_loss > 0 (pixel reconstruction) is not supported here")
        self.loss_scale = checked_loss_scale(cfg.loss_scale)
        self.target_layer_norm, self.target_final_norm = target_norms(cfg)

        def make_norm(dim: int) -> nn.LayerNorm:
            return nn.LayerNorm(dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)

        def make_block(drop_path: float) -> Block:
            return Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.encoder_dropout, cfg.attention_dropout,
                         cfg.activation_dropout, cfg.post_mlp_drop, float(drop_path), cfg.norm_eps,
                         cfg.norm_affine, cfg.layer_norm_first, ffn_targets=not cfg.end_of_block_targets)

        self.modality_encoders = nn.ModuleDict()
        for modality in self.modalities:
            mod_cfg = getattr(cfg.modalities, modality.name.lower())
            extra = {}
            if modality == Modality.TEXT:
                text_task = getattr(task, "text_task", task)
                extra["dictionary"] = getattr(text_task, "source_dictionary", None)
            self.modality_encoders[modality.name] = ENCODERS[modality](
                mod_cfg, cfg.embed_dim, make_block, make_norm, cfg.layer_norm_first, **extra)
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        rates = np.linspace(cfg.start_drop_path_rate, cfg.end_drop_path_rate, cfg.depth)
        self.blocks = nn.ModuleList(make_block(rates[i]) for i in range(cfg.depth))
        self.norm = make_norm(cfg.embed_dim) if cfg.layer_norm_first else None
        self.apply(self._mae_init if cfg.mae_init else init_bert_params)
        for encoder in self.modality_encoders.values():
            encoder.reset_parameters()
        for name, p in self.named_parameters():
            if p.dim() == 1 or name.endswith(".bias") or "alibi_scale" in name:
                p.optim_overrides = {"optimizer": {"weight_decay_scale": 0}}
            if cfg.decoder_group and "decoder" in name:
                p.param_group = "decoder"
        self.num_updates = 0
        self.teacher: Optional[EMATeacher] = None
        if not skip_ema:
            self.make_teacher()  # the initial copy (TeacherOwner)

    @staticmethod
    def _mae_init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def build_model(cls, cfg: Data2VecMultiConfig, task=None):
        if getattr(task, "supported_modalities", None):
            modalities = task.supported_modalities
        elif cfg.supported_modality is not None:
            modalities = [cfg.supported_modality]
        else:
            modalities = [Modality.AUDIO, Modality.IMAGE]
            if getattr(getattr(task, "text_task", task), "source_dictionary", None) is not None:
                modalities.append(Modality.TEXT)
        return cls(cfg, modalities, task=task, skip_ema=cfg.skip_ema)

    # --- the teacher ---------------------------------------------------------------------
    def teacher_scope(self) -> nn.Module:
        """What the EMA teacher copies: the shared blocks (``ema_encoder_only``), or the whole
        model without decoders (and without the local encoders unless ``ema_local_encoder``).
        Its state-dict keys are the ``_ema`` keys of the reference's checkpoints."""
        if self.cfg.ema_encoder_only:
            return self.blocks
        scope = nn.Module()
        scope.modality_encoders = nn.ModuleDict()
        for name, encoder in self.modality_encoders.items():
            dropped = ["decoder"]
            if not encoder.modality_cfg.ema_local_encoder:
                dropped += ["local_encoder", "project_features"]
            scope.modality_encoders[name] = view_without(encoder, *dropped)
        scope.blocks = self.blocks
        if self.norm is not None:
            scope.norm = self.norm
        return scope

    def set_num_updates(self, num_updates: int) -> None:
        """Takes the EMA step for the student of update ``num_updates`` (fairseq calls this at the
        start of the next update), once per update (TeacherOwner)."""
        super().set_num_updates(num_updates)
        self.num_updates = num_updates
        if self.teacher is not None:
            self.step_teacher(num_updates)

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        state = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        return self.teacher_state_into(state, prefix)

    def load_state_dict(self, state_dict, strict: bool = True, model_cfg=None, args=None):
        """Loads the student, then the teacher from ``_ema`` (or a copy of the student)."""
        state_dict = dict(state_dict)
        self.upgrade_state_dict_named(state_dict, "")
        saved = state_dict.pop(EMA_KEY, None)
        for name in self.modality_encoders:
            for stray in STRAY_KEYS:
                state_dict.pop(f"modality_encoders.{name}.{stray}", None)
        result = nn.Module.load_state_dict(self, state_dict, strict=strict)
        if self.teacher is not None:
            self.load_teacher(saved)
        return result

    def upgrade_state_dict_named(self, state_dict: Dict, name: str) -> Dict:
        """Older releases' 4-D ALiBi scales (H per block dropped) gain their leading dimension."""
        prefix = f"{name}." if name else ""
        for mod in self.modality_encoders:
            for where in (state_dict, state_dict.get(prefix + EMA_KEY) or {}):
                for key in (f"{prefix}modality_encoders.{mod}.alibi_scale", f"modality_encoders.{mod}.alibi_scale"):
                    if key in where and where[key].dim() == 4:
                        where[key] = where[key].unsqueeze(0)
        return state_dict

    # --- stages --------------------------------------------------------------------------
    def encoder_for(self, mode) -> ModalityEncoder:
        if mode is None:
            if self.cfg.supported_modality is None and len(self.modality_encoders) != 1:
                raise ValueError("data2vec_multi: give mode= (AUDIO, IMAGE or TEXT); the model holds "
                                 f"{list(self.modality_encoders)}")
            mode = self.cfg.supported_modality or next(iter(self.modality_encoders))
        name = modality_of(mode).name
        if name not in self.modality_encoders:
            raise ValueError(f"data2vec_multi: no {name} encoder in this model (it has {list(self.modality_encoders)})")
        return self.modality_encoders[name]

    def run_shared_blocks(self, encoded: Dict, keep_targets: bool = False):
        """The shared blocks on an encoder's output -> (x (B, T, C), each block's target)."""
        x = self.dropout_input(encoded["x"])
        x, targets = run_alibi_blocks(self.blocks, x, encoded["padding_mask"], encoded.get("alibi_bias"),
                                encoded.get("alibi_scale"), self.cfg.layerdrop, keep_targets)
        if self.norm is not None:
            x = self.norm(x)
        return x, targets

    @torch.no_grad()
    def make_targets(self, encoder: ModalityEncoder, source, padding_mask, local_features, target=None):
        """The teacher's targets (B, T, C) fp32: the unmasked input through the teacher, its top-K
        block targets normalized and averaged (extra tokens left out)."""
        if self.teacher is None:
            raise RuntimeError("data2vec_multi: no EMA teacher (remove_pretraining_modules was called)")
        teacher = self.teacher.to(local_features.device).model
        if self.cfg.ema_encoder_only:
            blocks = teacher
            inputs = encoder.contextualized_features(local_features, padding_mask, mask=False, remove_masked=False)
        else:
            blocks = teacher.blocks
            name = encoder.modality.name
            teacher_encoder = teacher.modality_encoders[name]
            if encoder.modality_cfg.ema_local_encoder:
                raw = target if target is not None else source
                raw = raw.float() if raw.is_floating_point() else raw  # the teacher is fp32 (fp16/bf16 runs)
                inputs = teacher_encoder(raw, padding_mask, mask=False, remove_masked=False)
            else:
                inputs = teacher_encoder.contextualized_features(local_features.float(), padding_mask, mask=False,
                                                                 remove_masked=False)
        _, layer_targets = run_alibi_blocks(blocks, inputs["x"].float(), inputs["padding_mask"], inputs["alibi_bias"],
                                      inputs["alibi_scale"], keep_targets=True)
        extra = encoder.modality_cfg.num_extra_tokens
        layer_targets = [y[:, extra:] for y in layer_targets]
        check_top_k(self.cfg.average_top_k_layers, self.cfg.depth, self.depth_key)  # named by its config key
        return build_targets(layer_targets, self.cfg.average_top_k_layers, self.target_layer_norm,
                             self.target_final_norm)

    def regress(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-step loss (N,) between predictions and targets, both (N, C)."""
        return regression_loss(pred, target, self.cfg.loss_beta, self.loss_scale)

    def forward(self, source, target=None, id=None, mode=None, padding_mask=None, mask: bool = True,
                features_only: bool = False, force_remove_masked: bool = False, remove_extra_tokens: bool = True,
                precomputed_mask=None):
        """Pre-training: {"losses": {MODE_regression (N,), [cls]}, "sample_size", "masked_pct",
        "pred_var", "target_var", "ema_decay"}. ``features_only``: {"x" (B, T, C), "padding_mask",
        "layer_results" (each block's target), "mask"}."""
        encoder = self.encoder_for(mode)
        if id is None:  # tasks that do not pass sample ids: the batch position stands in
            id = torch.arange(source.size(0))
        seeds = MaskSeeds(self.cfg.seed, self.num_updates, id)
        clone = self.cfg.clone_batch if not features_only else 1
        encoded = encoder(source, padding_mask, mask, remove_masked=not features_only or force_remove_masked,
                          clone_batch=clone, mask_seeds=seeds, precomputed_mask=precomputed_mask)
        x, layer_results = self.run_shared_blocks(encoded, keep_targets=features_only)
        mask_info = encoded["encoder_mask"]
        if features_only:
            pad = encoded["padding_mask"]
            if remove_extra_tokens:
                extra = encoder.modality_cfg.num_extra_tokens
                x = x[:, extra:]
                pad = pad[:, extra:] if pad is not None else None
            return {"x": x, "padding_mask": pad, "layer_results": layer_results, "mask": mask_info}
        if encoder.decoder is None:
            raise RuntimeError("data2vec_multi: pre-training needs the decoder (remove_pretraining_modules dropped it)")
        if mask_info is None:
            raise ModelConfigError(f"model config: modalities.{encoder.modality.name.lower()}.mask_prob must be > 0 "
                             "for pre-training")
        pred = encoder.decoder(encoder.decoder_input(x, mask_info))  # (B', T, C)
        y = self.make_targets(encoder, source, padding_mask, encoded["local_features"], target)  # (B, T, C)
        y_cloned = y.repeat_interleave(clone, 0) if clone > 1 else y
        masked = mask_info.mask
        y_masked, pred = y_cloned[masked], pred[masked]
        sample_size = masked.sum().long()
        losses = {}
        if self.cfg.cls_loss > 0:
            extra = encoder.modality_cfg.num_extra_tokens
            if extra == 0:
                raise ModelConfigError("model config: cls_loss > 0 needs an extra (CLS) token: "
                                 f"modalities.{encoder.modality.name.lower()}.num_extra_tokens")
            cls_target = y.mean(dim=1)
            cls_target = cls_target.repeat_interleave(clone, 0) if clone > 1 else cls_target
            losses["cls"] = self.regress(x[:, extra - 1], cls_target) * (self.cfg.cls_loss * sample_size)
        if self.cfg.d2v_loss > 0:
            losses[f"{encoder.modality.name}_regression"] = self.regress(pred, y_masked) * self.cfg.d2v_loss
        result = {"losses": losses, "sample_size": sample_size}
        with torch.no_grad():
            result["masked_pct"] = masked.float().mean()
            result["pred_var"] = feature_std(pred)
            result["target_var"] = feature_std(y_masked)
            result["ema_decay"] = self.teacher.decay * 1000
            cfg = self.cfg
            if self.training and self.num_updates >= cfg.var_check_after_updates:  # no host sync before
                check_collapse(self.num_updates, float(result["target_var"]), float(result["pred_var"]),
                               cfg.min_target_var, cfg.min_pred_var, cfg.var_check_after_updates, "model")
        return result

    def extract_features(self, source, mode=None, padding_mask=None, mask: bool = False,
                         remove_extra_tokens: bool = True) -> Dict:
        """The student on the whole input: {"x" (B, T, C), "padding_mask", "layer_results", "mask"}."""
        return self.forward(source, mode=mode, padding_mask=padding_mask, mask=mask, features_only=True,
                            remove_extra_tokens=remove_extra_tokens)

    # --- representations (hub.Representations) ------------------------------------------
    def only_encoder(self) -> ModalityEncoder:
        if len(self.modality_encoders) != 1:
            raise ValueError(f"data2vec_multi holds {list(self.modality_encoders)}: give one modality")
        return next(iter(self.modality_encoders.values()))

    @torch.no_grad()
    def hidden_states(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        """Unmasked input -> (the shared blocks' input and each block's output, each (B, T, C),
        padding (B, T) or None); images keep their CLS token first."""
        encoded = self.only_encoder()(source, padding_mask, mask=False, remove_masked=False)
        x, padding = encoded["x"], encoded["padding_mask"]
        states = [x]
        for i, block in enumerate(self.blocks):
            x, _ = block(x, padding, scaled_bias(encoded["alibi_bias"], encoded["alibi_scale"], i))
            states.append(x)
        if self.norm is not None:
            states[-1] = self.norm(states[-1])
        if padding is not None and not padding.any():
            padding = None
        return states, padding

    def downsample_rate(self) -> int:
        """Input units per output step: samples per frame, pixels per patch side, 1 token."""
        encoder = self.only_encoder()
        if encoder.modality == Modality.AUDIO:
            return int(np.prod([stride for _, _, stride in encoder.feature_enc_layers]))
        if encoder.modality == Modality.IMAGE:
            return encoder.modality_cfg.patch_size
        return 1

    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """Output steps for inputs of these lengths (images: extra tokens + patches)."""
        encoder = self.only_encoder()
        if encoder.modality == Modality.AUDIO:
            return encoder.frames(input_lengths)
        if encoder.modality == Modality.IMAGE:
            return torch.full_like(input_lengths, encoder.side ** 2 + encoder.modality_cfg.num_extra_tokens)
        return input_lengths

    def remove_pretraining_modules(self, modality=None, keep_decoder: bool = False) -> None:
        """For fine-tuning: drops the teacher, the other modalities' encoders and the decoders."""
        self.teacher = None
        self.cfg.clone_batch = 1
        keep = modality_of(modality).name if modality is not None else None
        for name in list(self.modality_encoders):
            if keep is not None and name != keep:
                del self.modality_encoders[name]
            else:
                self.modality_encoders[name].remove_pretraining_modules(keep_decoder)
