"""``data2vec_vision``: data2vec for images (Baevski et al., 2022, sec. 4.1), and the image
classifier fine-tuned from it (``data2vec_image_classification``).

Front end: a 16 x 16 patch embedding (a conv) and a CLS token. Masking: BEiT block masks of 60%
of the patches, replaced by a learned mask token. Student: the BEiT-style ViT of
``modules/vit.py`` (drop path in the student only). Targets: the residual stream after each of
the top 6 teacher blocks, each layer-normalized, averaged, layer-normalized again; regressed at
masked patches (never the CLS token) by a linear head on the final-norm output, Smooth L1 beta 2.
The teacher (an EMA copy of blocks, bias and final norm, tau 0.9998) sees the same augmented
image, unmasked; patch embedding and CLS token are shared.
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from fairseq.models import BaseFairseqModel, register_model
from omegaconf import open_dict
from torch import nn

from ..modules.errors import ModelConfigError
from ..modules.masking import block_mask
from ..modules.vit import LAYER_NORM_EPS, PatchEmbed, VisionTransformer
from .base import Data2VecModel
from .config import TARGET_FEATURE_CHOICES, Data2VecSharedConfig, shared_default
from .pretrained import PretrainedEncoderConfig, pretrained_for_finetuning

logger = logging.getLogger(__name__)


@dataclass
class Data2VecVisionConfig(Data2VecSharedConfig):
    """The ViT and the shared data2vec fields; defaults are the release's ViT-B/16 values."""

    image_size: int = field(default=224, metadata={"help": "input height and width in pixels"})
    patch_size: int = field(default=16, metadata={"help": "patch height and width in pixels"})
    in_channels: int = field(default=3, metadata={"help": "image channels"})
    embed_dim: int = field(default=768, metadata={"help": "Transformer width"})
    depth: int = field(default=12, metadata={"help": "number of blocks"})
    num_heads: int = field(default=12, metadata={"help": "attention heads"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP width / embed_dim"})
    layer_scale_init_value: float = field(default=1e-4, metadata={"help": "layer scale init (Large: 1e-5)"})
    drop_path: float = field(default=0.25, metadata={"help": "stochastic depth of the last block (student only)"})
    attention_dropout: float = field(default=0.0, metadata={"help": "dropout on attention weights"})
    dropout: float = field(default=0.0, metadata={"help": "dropout after the MLP"})
    # masking
    mask_prob: float = field(default=0.6, metadata={"help": "share of the patches masked"})
    num_mask_patches: int = field(
        default=120, metadata={"help": "patches masked per image (0: round(mask_prob * patches))"}
    )
    min_mask_patches_per_block: int = field(default=16, metadata={"help": "smallest mask block, in patches"})
    mask_min_aspect: float = field(default=0.3, metadata={"help": "mask blocks' aspect ratio lies in [r, 1/r]"})
    # the paper's vision values for the shared fields
    average_top_k_layers: int = shared_default("average_top_k_layers", 6)
    target_feature: TARGET_FEATURE_CHOICES = shared_default("target_feature", "block")  # type: ignore[valid-type]
    layer_norm_target_layer: bool = shared_default("layer_norm_target_layer", True)
    layer_norm_targets: bool = shared_default("layer_norm_targets", True)
    loss_beta: float = shared_default("loss_beta", 2.0)
    ema_decay: float = shared_default("ema_decay", 0.9998)  # constant: tau_e = tau0
    ema_end_decay: float = shared_default("ema_end_decay", 0.9998)

def masked_count(cfg: Data2VecVisionConfig) -> int:
    """Patches masked per image: num_mask_patches, or round(mask_prob * patches) when it is 0."""
    patches = (cfg.image_size // cfg.patch_size) ** 2
    count = cfg.num_mask_patches if cfg.num_mask_patches > 0 else int(round(cfg.mask_prob * patches))
    return min(count, patches)


@register_model("data2vec_vision", dataclass=Data2VecVisionConfig)
class Data2VecVisionModel(Data2VecModel):
    """data2vec image model; see the module docstring."""

    def __init__(self, cfg: Data2VecVisionConfig):
        super().__init__(cfg, cfg.embed_dim, cfg.depth, "model.depth")
        self.patch_embed = PatchEmbed(cfg.image_size, cfg.patch_size, cfg.in_channels, cfg.embed_dim)
        patches = self.patch_embed.num_patches
        if masked_count(cfg) < cfg.min_mask_patches_per_block and masked_count(cfg) > 0:
            raise ModelConfigError(
                f"model config: {masked_count(cfg)} masked patches per image is less than "
                f"min_mask_patches_per_block={cfg.min_mask_patches_per_block} ({patches} patches)"
            )
        self.cls_emb = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.mask_emb = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        nn.init.trunc_normal_(self.cls_emb, std=0.02)
        nn.init.trunc_normal_(self.mask_emb, std=0.02)
        self.encoder = VisionTransformer(
            self.patch_embed.grid, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio,
            cfg.layer_scale_init_value, cfg.drop_path, cfg.attention_dropout, cfg.dropout,
        )
        nn.init.trunc_normal_(self.patch_embed.proj.weight, std=0.02)
        nn.init.zeros_(self.patch_embed.proj.bias)

    @classmethod
    def build_model(cls, cfg: Data2VecVisionConfig, task=None):
        """fairseq's constructor hook."""
        return cls(cfg)

    def teacher_scope(self) -> nn.Module:
        """Blocks, relative position bias and final norm; patch embedding and CLS are shared."""
        return self.encoder

    def truncate_blocks(self, keep: int) -> None:
        """Keeps the first ``keep`` blocks."""
        self.encoder.blocks = nn.ModuleList(list(self.encoder.blocks)[:keep])

    def embed(self, source: torch.Tensor, padding_mask=None):
        """Images (B, C, H, W) -> CLS + patch embeddings (B, 1 + N, D); no padding."""
        patches = self.patch_embed(source)
        cls = self.cls_emb.expand(patches.size(0), -1, -1).to(patches.dtype)
        return torch.cat([cls, patches], dim=1), None

    def mask(self, features, padding_mask, sample_ids=None, **unused):
        """Block masks over the patches (never the CLS token), replaced by the mask token.
        Returns x (B, 1 + N, D), mask (B, 1 + N) bool."""
        cfg = self.cfg
        patches = block_mask(
            features.size(0), self.patch_embed.grid, cfg.mask_prob, seed=cfg.seed, num_updates=self.num_updates,
            sample_ids=sample_ids, num_masked=masked_count(cfg), min_block=cfg.min_mask_patches_per_block,
            min_aspect=cfg.mask_min_aspect, device=features.device,
        )
        mask = F.pad(patches, (1, 0), value=False)
        x = torch.where(mask.unsqueeze(-1), self.mask_emb.to(features.dtype), features)
        return x, mask

    def encode_student(self, x, padding_mask, layer: Optional[int] = None):
        """Student ViT: (B, 1 + N, D) -> final-norm output (B, 1 + N, D); ``layer`` stops after
        that block (no final norm)."""
        x, _ = self.encoder(x, layers=None if layer is None else layer + 1)
        return x if layer is not None else self.encoder.norm(x)

    def hidden_states(self, source: torch.Tensor, padding_mask=None):
        """Every layer's representation of images (B, C, H, W), transformers' numbering: index 0
        the CLS + patch embeddings, index i the output of block i (the residual stream, before
        the final norm). Returns (list of (B, 1 + N, D), None)."""
        features, _ = self.embed(source)
        _, blocks = self.encoder(features, capture="block")
        return [features, *blocks], None

    def encode_teacher(self, features, padding_mask, blocks: nn.Module) -> List[torch.Tensor]:
        """The teacher's chosen feature of every block, each (B, 1 + N, D)."""
        _, captured = blocks(features, capture=self.cfg.target_feature,
                             attention_window=self.cfg.teacher_attention_window)
        return captured


@dataclass
class ImageClassificationConfig(PretrainedEncoderConfig):
    """Fine-tuning a pre-trained ``data2vec_vision`` for classification (release values, Base)."""

    drop_path: float = field(default=0.2, metadata={"help": "stochastic depth in fine-tuning (Large: 0.25)"})
    layer_decay: float = field(default=0.65, metadata={"help": "layer-wise lr decay: block i gets decay^(L+1-i)"})
    head_init_scale: float = field(default=0.001, metadata={"help": "scale of the head's initial weights"})


@register_model("data2vec_image_classification", dataclass=ImageClassificationConfig)
class Data2VecImageClassificationModel(BaseFairseqModel):
    """Pre-trained ViT -> mean of the patch tokens -> LayerNorm -> linear head: images (B, C, H, W)
    -> logits (B, classes). Parameters carry ``optim_overrides`` with their layer-wise lr scale
    for fairseq's ``composite`` optimizer (``dynamic_groups: true``)."""

    def __init__(self, cfg: ImageClassificationConfig, encoder: Data2VecVisionModel):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        dim = encoder.cfg.embed_dim
        self.fc_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(dim, cfg.num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        self.head.weight.data.mul_(cfg.head_init_scale)
        nn.init.zeros_(self.head.bias)
        self.set_layer_decay(cfg.layer_decay)

    @classmethod
    def build_model(cls, cfg: ImageClassificationConfig, task=None):
        """Builds the ViT from ``model_path``'s config and, unless ``no_pretrained_weights``,
        loads its student weights; the teacher and regression head are dropped."""
        state = pretrained_for_finetuning(cfg, "data2vec_vision", task)
        with open_dict(cfg):
            cfg.pretrained_args.drop_path = cfg.drop_path
        encoder = Data2VecVisionModel(cfg.pretrained_args)
        if state is not None and not cfg.no_pretrained_weights:
            encoder.load_state_dict(state["model"], strict=True)
            logger.info(f"loaded the pre-trained student of {cfg.model_path}")
        encoder.remove_pretraining_modules()
        encoder.encoder.set_drop_path(cfg.drop_path)
        return cls(cfg, encoder)

    def layer_id(self, name: str) -> int:
        """0 for the embeddings, i + 1 for block i, L + 1 for the norm and head."""
        if name.startswith("encoder.encoder.blocks."):
            return int(name.split(".")[3]) + 1
        if name.startswith(("encoder.patch_embed", "encoder.cls_emb", "encoder.mask_emb", "encoder.encoder.rel_pos_bias")):
            return 0
        return len(self.encoder.encoder.blocks) + 1

    def set_layer_decay(self, decay: float) -> Dict[str, float]:
        """Sets every parameter's lr scale to decay^(L + 1 - layer id); returns {name: scale}."""
        top = len(self.encoder.encoder.blocks) + 1
        scales = {}
        for name, param in self.named_parameters():
            scale = decay ** (top - self.layer_id(name))
            param.optim_overrides = {"optimizer": {"lr_scale": scale}}
            scales[name] = scale
        return scales

    def features(self, source: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, D) of images (B, C, H, W)."""
        x, _ = self.encoder.embed(source)
        x, _ = self.encoder.encoder(x)
        return self.fc_norm(x[:, 1:].mean(dim=1))

    def forward(self, source: torch.Tensor, **unused) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, classes)."""
        return self.head(self.features(source))
