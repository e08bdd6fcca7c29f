"""``data2vec_text``: data2vec for text (Baevski et al., 2022, sec. 4.3), on the shared core.

Body in fairseq's RoBERTa layout (``encoder.sentence_encoder.*``: token embeddings, learned
positions, embedding LayerNorm, post-LN blocks), so the names of fairseq's released text
checkpoints and its ``roberta`` tooling line up; the prediction head is
``encoder.regression_head``, classification heads ``classification_heads.NAME``.

Masking is the data pipeline's (fairseq's ``masked_lm`` task with ``include_target_tokens``):
it gives the masked tokens (``src_tokens``) and the original token at each masked position
(``target_tokens``, padding elsewhere). The teacher encodes the full, unmasked sequence
rebuilt from the two, as the paper says; fairseq's own implementation feeds its teacher
``target_tokens`` alone (padding everywhere but the masked positions, fairseq issue #4881).
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from fairseq.dataclass import ChoiceEnum
from fairseq.models import register_model
from fairseq.models.roberta.model import RobertaClassificationHead
from fairseq.models.transformer import TransformerConfig, TransformerEncoderBase
from fairseq.models.transformer.transformer_config import (
    DecoderConfig,
    EncDecBaseConfig,
)
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..modules.ema import EMA_KEY, LEGACY_UPDATES_KEY
from ..modules.errors import ModelConfigError
from ..modules.transformer import run_time_major_layers, zero_padding
from .base import Data2VecModel
from .config import Data2VecSharedConfig, shared_default

logger = logging.getLogger(__name__)


def roberta_base_transformer() -> TransformerConfig:
    """The Base body (RoBERTa / data2vec release): 12 post-LN blocks of 768, 12 heads, FFN 3072,
    GELU, learned positions (512), embedding LayerNorm, unscaled embeddings, dropout 0.1."""
    # fresh EncDecBaseConfig / DecoderConfig instances: TransformerConfig's defaults are the
    # classes themselves, and setting fields on those would change fairseq's defaults globally
    encoder = EncDecBaseConfig(embed_dim=768, ffn_embed_dim=3072, layers=12, attention_heads=12,
                               normalize_before=False, learned_pos=True, layerdrop=0.0)
    cfg = TransformerConfig(encoder=encoder, decoder=DecoderConfig(), dropout=0.1, attention_dropout=0.1,
                            activation_dropout=0.0, activation_fn="gelu", layernorm_embedding=True,
                            no_scale_embedding=True, max_source_positions=512)
    return cfg


@dataclass
class Data2VecTextConfig(Data2VecSharedConfig):
    """The released text config's fields; defaults are the paper's Base values (fairseq's
    ``examples/data2vec/config/text/pretraining/base.yaml``)."""

    max_positions: Optional[int] = field(
        default=None,
        metadata={"help": "kept for released configs (task.tokens_per_sample there); the body's "
                  "transformer.max_source_positions sets the positions"},
    )
    head_layers: int = field(
        default=2, metadata={"help": "regression head: N Linears with GELUs between, the first widening to 2D "
                             "(1: one Linear; 2: Linear(D, 2D), GELU, Linear(2D, D), the release)"}
    )
    transformer: TransformerConfig = field(
        default_factory=roberta_base_transformer, metadata={"help": "the RoBERTa-style body"}
    )
    load_checkpoint_heads: bool = field(
        default=False, metadata={"help": "(re-)register the classification heads a loaded checkpoint has"}
    )
    classifier_pooling: ChoiceEnum(["cls", "mean"]) = field(  # type: ignore[valid-type]
        default="cls",
        metadata={"help": "what a classification head reads: cls (the <s> output, RoBERTa's) or "
                  "mean (the mean of the non-padding outputs)"},
    )
    # the release's text values for the shared fields
    average_top_k_layers: int = shared_default("average_top_k_layers", 10)
    layer_norm_target_layer: bool = shared_default("layer_norm_target_layer", True)
    loss_beta: float = shared_default("loss_beta", 4.0)
    loss_scale: Optional[float] = shared_default("loss_scale", 1.0)
    ema_anneal_end_step: int = shared_default("ema_anneal_end_step", 300000)
    ema_transformer_layers_only: bool = field(
        default=True,
        metadata={"help": "the teacher averages only the blocks; embeddings are shared (only True is supported)"},
    )


def make_regression_head(dim: int, layers: int) -> nn.Module:
    """The regression head of the text release, (N, D) -> (N, D), for any ``layers`` >= 1: a
    Sequential of ``layers`` Linears with GELUs between, the first widening to 2D (keys
    ``regression_head.0.*``, ``.2.*``, ... as the released checkpoints name them)."""
    if layers < 1:
        raise ModelConfigError(f"model config: head_layers={layers}: at least 1")
    modules, width = [], dim
    for i in range(layers - 1):
        wider = dim * 2 if i == 0 else width
        modules += [nn.Linear(width, wider), nn.GELU()]
        width = wider
    return nn.Sequential(*modules, nn.Linear(width, dim))


def transformer_config(cfg) -> TransformerConfig:
    """The body's config as fairseq's ``TransformerEncoderBase`` wants it (a dataclass)."""
    body = cfg.transformer
    if isinstance(body, DictConfig):
        body = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(roberta_base_transformer()), body))
    return body


class TextEncoder(nn.Module):
    """RoBERTa's ``encoder``: ``sentence_encoder`` (fairseq's TransformerEncoderBase) and the
    data2vec ``regression_head``."""

    def __init__(self, cfg: Data2VecTextConfig, dictionary):
        super().__init__()
        body = transformer_config(cfg)
        dim = body.encoder.embed_dim
        embed_tokens = nn.Embedding(len(dictionary), dim, dictionary.pad())
        self.sentence_encoder = TransformerEncoderBase(body, dictionary, embed_tokens)
        self.sentence_encoder.apply(init_bert_params)
        self.regression_head: Optional[nn.Module] = make_regression_head(dim, cfg.head_layers)


@register_model("data2vec_text", dataclass=Data2VecTextConfig)
class Data2VecTextModel(Data2VecModel):
    """data2vec text model; see the module docstring."""

    # the reference's data2vec_text reads loss_scale <= 0 as 1/sqrt(dim), and its released
    # configs say loss_scale: 0; read as a literal 0 the loss would be 0 and nothing would train
    nonpositive_loss_scale_is_default = True

    def __init__(self, cfg: Data2VecTextConfig, dictionary):
        if not cfg.ema_transformer_layers_only:
            raise ModelConfigError("model config: ema_transformer_layers_only=false is not supported "
                             "(the teacher averages the blocks; embeddings are shared)")
        dim = transformer_config(cfg).encoder.embed_dim
        super().__init__(cfg, dim, transformer_config(cfg).encoder.layers, "model.transformer.encoder.layers",
                         linear_head=False)
        self.encoder_dim = dim
        self.dictionary = dictionary
        self.encoder = TextEncoder(cfg, dictionary)
        self.classification_heads = nn.ModuleDict()

    @classmethod
    def build_model(cls, cfg: Data2VecTextConfig, task=None):
        """fairseq's constructor hook: the vocabulary is the task's source dictionary."""
        return cls(cfg, task.source_dictionary)

    @property
    def body(self) -> TransformerEncoderBase:
        """``encoder.sentence_encoder``."""
        return self.encoder.sentence_encoder

    # --- the core's stages ----------------------------------------------------------------
    def teacher_scope(self) -> nn.Module:
        """The blocks (and the final LayerNorm of a pre-LN body); embeddings are shared."""
        scope = nn.ModuleDict({"layers": self.body.layers})
        if self.body.layer_norm is not None:
            scope["layer_norm"] = self.body.layer_norm
        return scope

    def regression_head(self) -> Optional[nn.Module]:
        return self.encoder.regression_head

    def drop_regression_head(self) -> None:
        self.encoder.regression_head = None

    def truncate_blocks(self, keep: int) -> None:
        self.body.layers = nn.ModuleList(list(self.body.layers)[:keep])

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T) -> token + position embeddings, embedding LayerNorm: (B, T, C), no dropout."""
        body = self.body
        x = body.embed_scale * body.embed_tokens(tokens)
        if body.embed_positions is not None:
            x = x + body.embed_positions(tokens)
        if body.layernorm_embedding is not None:
            x = body.layernorm_embedding(x)
        return x

    def embed(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        """The unmasked tokens (B, T) -> the teacher's input (B, T, C), padding (B, T) or None."""
        padding = source.eq(self.dictionary.pad())
        return self.embed_tokens(source), (padding if padding.any() else None)

    def mask(self, features, padding_mask, sample_ids=None, masked_tokens=None, mask_indices=None, **unused):
        """The student's view: the data pipeline's masked tokens (B, T), embedded (B, T, C), and
        which positions were chosen, (B, T). Without them (feature extraction), the input as is."""
        if masked_tokens is None:
            return self.body.dropout_module(features), None
        return self.body.dropout_module(self.embed_tokens(masked_tokens)), mask_indices

    def _blocks(self, x, padding_mask, layers, final_norm, **kwargs):
        x = zero_padding(x, padding_mask).transpose(0, 1)  # (B, T, C) -> (T, B, C)
        x, captured = run_time_major_layers(layers, x, padding_mask, **kwargs)
        if final_norm is not None:
            x = final_norm(x)
        return x.transpose(0, 1), captured

    def encode_student(self, x, padding_mask, layer: Optional[int] = None):
        """Student blocks on ``x`` (B, T, C) -> (B, T, C); ``layer`` stops after that block."""
        layers = self.body.layers if layer is None else self.body.layers[: layer + 1]
        final_norm = self.body.layer_norm if layer is None else None
        layerdrop = self.body.encoder_layerdrop if self.training else 0.0
        return self._blocks(x, padding_mask, layers, final_norm, layerdrop=layerdrop)[0]

    def encode_teacher(self, features, padding_mask, blocks: nn.Module) -> List[torch.Tensor]:
        """The teacher's chosen feature of every block (the FFN output by default), each (B, T, C)."""
        _, captured = self._blocks(features, padding_mask, blocks["layers"], None,
                                   capture=self.cfg.target_feature,
                                   attention_window=self.cfg.teacher_attention_window)
        return [y.transpose(0, 1) for y in captured]

    def hidden_states(self, src_tokens: torch.Tensor, padding_mask=None):
        """Every layer's representation of tokens (B, T), transformers' numbering: index 0 the
        embeddings (after their LayerNorm), index i the output of block i. Returns (list of
        (B, T, C), padding (B, T) or None)."""
        features, padding = self.embed(src_tokens, None)
        _, blocks = self._blocks(features, padding, self.body.layers, None, capture="block")
        return [zero_padding(features, padding)] + [y.transpose(0, 1) for y in blocks], padding

    # --- fairseq / RoBERTa entry points ---------------------------------------------------
    def forward(
        self,
        src_tokens: torch.Tensor,
        src_lengths: Optional[torch.Tensor] = None,
        target_tokens: Optional[torch.Tensor] = None,
        features_only: bool = False,
        return_all_hiddens: bool = False,
        classification_head_name: Optional[str] = None,
        sample_ids=None,
        **unused,
    ):
        """Pre-training (``target_tokens`` given, as masked_lm's ``include_target_tokens``
        gives them): the core's step, a dict of ``losses``, ``sample_size``, statistics.

        Otherwise RoBERTa's call: ``src_tokens`` (B, T) -> (features (B, T, C), extra), or with
        ``classification_head_name`` (logits (B, classes), extra)."""
        if target_tokens is not None and not features_only and classification_head_name is None:
            pad = self.dictionary.pad()
            chosen = target_tokens.ne(pad)
            full = torch.where(chosen, target_tokens, src_tokens)  # the original sequence
            return super().forward(full, None, sample_ids=sample_ids, masked_tokens=src_tokens, mask_indices=chosen)
        x, extra = self.extract_features(src_tokens, return_all_hiddens=return_all_hiddens)
        if classification_head_name is not None:
            if self.cfg.classifier_pooling == "mean":
                keep = src_tokens.ne(self.dictionary.pad()).unsqueeze(-1).to(x.dtype)
                x = (x * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)  # (B, 1, C)
            x = self.classification_heads[classification_head_name](x)  # reads position 0
        elif not features_only:
            raise ValueError("data2vec_text: pre-training needs target_tokens (task masked_lm with "
                             "include_target_tokens=true); use features_only=True for features")
        return x, extra

    def extract_features(self, src_tokens: torch.Tensor, return_all_hiddens: bool = False, **unused):
        """Student features of unmasked tokens (B, T) -> ((B, T, C), {"inner_states": [(T, B, C)]}):
        with ``return_all_hiddens``, the blocks' input then every block's output (RoBERTa's list)."""
        features, padding = self.embed(src_tokens, None)
        x = self.body.dropout_module(features)
        layerdrop = self.body.encoder_layerdrop if self.training else 0.0
        out, blocks = self._blocks(x, padding, self.body.layers, None, layerdrop=layerdrop,
                                   capture="block" if return_all_hiddens else None)
        if self.body.layer_norm is not None:
            out = self.body.layer_norm(out)
        if not return_all_hiddens:
            return out, {"inner_states": [out.transpose(0, 1)]}
        return out, {"inner_states": [zero_padding(x, padding).transpose(0, 1), *blocks]}

    def max_positions(self):
        return self.body.max_source_positions

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        logits = net_output[0].float()
        return F.log_softmax(logits, dim=-1) if log_probs else F.softmax(logits, dim=-1)

    def register_classification_head(self, name: str, num_classes: int, inner_dim: Optional[int] = None, **unused):
        """RoBERTa's head on ``<s>``: dense, tanh, out (fairseq's sentence_prediction task calls this)."""
        self.classification_heads[name] = RobertaClassificationHead(
            input_dim=self.encoder_dim, inner_dim=inner_dim or self.encoder_dim, num_classes=num_classes,
            activation_fn="tanh", pooler_dropout=0.0,
        )

    def upgrade_state_dict_named(self, state_dict: Dict, name: str) -> None:
        """Released checkpoints keep the teacher under ``encoder._ema``: it moves to the core's
        ``_ema``. Fine-tuning from a pre-trained checkpoint: the pre-training modules (head,
        teacher) are dropped, and classification heads the checkpoint lacks keep their fresh weights."""
        prefix = name + "." if name else ""
        super().upgrade_state_dict_named(state_dict, name)
        if prefix + "encoder._ema" in state_dict:
            state_dict[prefix + "_ema"] = state_dict.pop(prefix + "encoder._ema")
        for suffix in ("weight", "bias"):  # one-layer heads of earlier versions were a bare Linear
            old = f"{prefix}encoder.regression_head.{suffix}"
            if old in state_dict:
                state_dict[f"{prefix}encoder.regression_head.0.{suffix}"] = state_dict.pop(old)
        saved = state_dict.get(prefix + "encoder.sentence_encoder.embed_tokens.weight")
        if saved is not None and saved.size(0) != len(self.dictionary):
            raise ValueError(
                f"the checkpoint's vocabulary has {saved.size(0)} entries, this task's dictionary "
                f"{len(self.dictionary)} (its dict.txt plus fairseq's special symbols and <mask>): "
                "the data must be binarized with the pre-training dict.txt (d2v prepare glue --dict)"
            )
        if len(self.classification_heads) == 0:
            return
        self.remove_pretraining_modules()
        for key in [k for k in state_dict if k.startswith(prefix + "encoder.regression_head.")
                    or k in (prefix + EMA_KEY, prefix + LEGACY_UPDATES_KEY)]:
            del state_dict[key]
        for key, value in self.state_dict().items():
            if key.startswith("classification_heads.") and prefix + key not in state_dict:
                logger.info(f"{prefix + key}: not in the checkpoint, keeps its initialization")
                state_dict[prefix + key] = value
