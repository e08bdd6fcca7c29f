"""The config of ``data2vec_multi`` (data2vec 2.0), field for field as fairseq's reference
declares it (``examples/data2vec/models/data2vec2.py`` and ``modalities/*.py``: names, types and
defaults), so that the ``cfg`` a released checkpoint carries and the reference's v2 YAMLs read
here unchanged. Nested configs use ``default_factory`` (a mutable default breaks Python 3.11).
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from fairseq.dataclass import FairseqDataclass
from omegaconf import II, MISSING


class Modality(Enum):
    """The input kinds; the names are what configs and checkpoints hold (values as the reference's)."""

    AUDIO = 1
    IMAGE = 2
    TEXT = 3


@dataclass
class D2vDecoderConfig:
    """The light conv decoder that predicts the masked steps' targets."""

    decoder_dim: int = 384
    decoder_groups: int = 16
    decoder_kernel: int = 5
    decoder_layers: int = 5
    input_dropout: float = 0.1
    add_positions_masked: bool = False
    add_positions_all: bool = False
    decoder_residual: bool = True
    projection_layers: int = 1
    projection_ratio: float = 2.0


@dataclass
class D2vModalityConfig:
    """What every modality encoder shares: its own blocks (prenet), extra tokens, masking,
    ALiBi and its decoder."""

    type: Modality = MISSING
    prenet_depth: int = 4
    prenet_layerdrop: float = 0
    prenet_dropout: float = 0
    start_drop_path_rate: float = 0
    end_drop_path_rate: float = 0

    num_extra_tokens: int = 0
    init_extra_token_zero: bool = True

    mask_noise_std: float = 0.01
    mask_prob_min: Optional[float] = None
    mask_prob: float = 0.7
    inverse_mask: bool = False
    mask_prob_adjust: float = 0
    keep_masked_pct: float = 0

    mask_length: int = 5
    add_masks: bool = False
    remove_masks: bool = False
    mask_dropout: float = 0.0
    encoder_zero_mask: bool = True

    mask_channel_prob: float = 0.0
    mask_channel_length: int = 64

    ema_local_encoder: bool = False
    local_grad_mult: float = 1.0

    use_alibi_encoder: bool = False
    alibi_scale: float = 1.0
    learned_alibi: bool = False
    alibi_max_pos: Optional[int] = None
    learned_alibi_scale: bool = False
    learned_alibi_scale_per_head: bool = False
    learned_alibi_scale_per_layer: bool = False

    num_alibi_heads: int = II("model.num_heads")
    model_depth: int = II("model.depth")

    decoder: Optional[D2vDecoderConfig] = field(default_factory=D2vDecoderConfig)


@dataclass
class D2vAudioConfig(D2vModalityConfig):
    type: Modality = Modality.AUDIO
    extractor_mode: str = "layer_norm"
    feature_encoder_spec: str = field(
        default="[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
        metadata={"help": "conv front end as [(dim, kernel, stride), ...] (list literals, + and * only)"},
    )
    conv_pos_width: int = field(default=95, metadata={"help": "total width of the positional convs"})
    conv_pos_groups: int = field(default=16, metadata={"help": "groups of the positional convs"})
    conv_pos_depth: int = field(default=5, metadata={"help": "positional conv layers"})
    conv_pos_pre_ln: bool = False


@dataclass
class D2vImageConfig(D2vModalityConfig):
    type: Modality = Modality.IMAGE
    input_size: int = 224
    in_chans: int = 3
    patch_size: int = 16
    embed_dim: int = 768
    alibi_dims: int = 2
    alibi_distance: str = "manhattan"
    fixed_positions: bool = True
    transformer_decoder: bool = False
    enc_dec_transformer: bool = False


@dataclass
class D2vTextConfig(D2vModalityConfig):
    type: Modality = Modality.TEXT
    max_source_positions: int = 512
    learned_pos: bool = True
    dropout: float = 0.1
    no_scale_embedding: bool = True
    layernorm_embedding: bool = True
    no_token_positional_embeddings: bool = False


@dataclass
class D2vModalitiesConfig(FairseqDataclass):
    audio: D2vAudioConfig = field(default_factory=D2vAudioConfig)
    image: D2vImageConfig = field(default_factory=D2vImageConfig)
    text: D2vTextConfig = field(default_factory=D2vTextConfig)


@dataclass
class Data2VecMultiConfig(FairseqDataclass):
    """data2vec 2.0's model: the reference's fields and defaults (its YAMLs set the recipes)."""

    loss_beta: float = field(default=0, metadata={"help": "beta of the smooth L1 loss; 0: squared error"})
    loss_scale: Optional[float] = field(
        default=None, metadata={"help": "scale of the regression loss; null: 1/sqrt(embed_dim)"})

    depth: int = 8
    start_drop_path_rate: float = 0
    end_drop_path_rate: float = 0
    num_heads: int = 12
    norm_eps: float = 1e-6
    norm_affine: bool = True
    encoder_dropout: float = 0.1
    post_mlp_drop: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    layerdrop: float = 0.0
    embed_dim: int = 768
    mlp_ratio: float = 4
    layer_norm_first: bool = False

    average_top_k_layers: int = field(default=8, metadata={"help": "how many top blocks' outputs the targets average"})
    end_of_block_targets: bool = False

    clone_batch: int = field(default=1, metadata={"help": "masked copies of each sample per teacher pass"})

    layer_norm_target_layer: bool = False
    batch_norm_target_layer: bool = False
    instance_norm_target_layer: bool = False
    instance_norm_targets: bool = False
    layer_norm_targets: bool = False

    ema_decay: float = field(default=0.999, metadata={"help": "initial EMA decay"})
    ema_same_dtype: bool = True
    log_norms: bool = True
    ema_end_decay: float = field(default=0.9999, metadata={"help": "final EMA decay"})
    ema_anneal_end_step: int = II("optimization.max_update")
    ema_encoder_only: bool = field(
        default=True, metadata={"help": "the teacher copies the shared blocks only (else the encoders too)"})

    max_update: int = II("optimization.max_update")

    modalities: D2vModalitiesConfig = field(default_factory=D2vModalitiesConfig)

    shared_decoder: Optional[D2vDecoderConfig] = None

    min_target_var: float = field(default=0.1, metadata={"help": "stop if the target std falls below this"})
    min_pred_var: float = field(default=0.01, metadata={"help": "stop if the prediction std falls below this"})
    var_check_after_updates: int = field(
        default=5000, metadata={"help": "check min_target_var / min_pred_var from this update on"})

    supported_modality: Optional[Modality] = None
    mae_init: bool = False

    seed: int = II("common.seed")

    skip_ema: bool = False

    cls_loss: float = 0
    recon_loss: float = 0
    d2v_loss: float = 1

    decoder_group: bool = False
