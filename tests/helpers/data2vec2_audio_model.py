"""The speech-only ``data2vec2_audio`` model as it was (moved here, unregistered, when the package's
speech 2.0 became ``data2vec_multi``), to check that its checkpoints convert: data2vec 2.0 for speech (Baevski et al., 2022b, "Efficient
Self-supervised Learning with Contextualized Target Representations for Vision, Speech and Language").

The speech model of v1 (same conv front end, blocks, parameter names and fine-tuning path),
trained the 2.0 way:

* the conv front end runs once per sample, then the batch is repeated ``clone_batch`` times,
  each copy with its own mask of exactly ``int(mask_prob * T)`` frames (spans of ``mask_length``);
* the student zeroes the masked frames, runs the positional conv over the whole sequence and
  encodes only the kept frames (ALiBi biases keep their original distances);
* a light conv decoder restores the full length from the kept outputs plus N(0, mask_noise_std)
  at the masked frames; the loss is taken at masked frames only;
* the teacher encodes each original sample once; its targets (v1's target builder: top-K
  feed-forward outputs, instance-normalized, averaged) are repeated for every copy.

In fine-tuning (``features_only``) the whole sequence goes through the blocks, as in v1,
with masked frames zeroed rather than replaced by an embedding.
"""

from typing import Optional, Sequence

import torch
from torch import nn

from d2v_fairseq.models.data2vec2_audio import Data2Vec2AudioConfig
from d2v_fairseq.models.data2vec_audio import Data2VecAudioModel
from d2v_fairseq.modules.transformer import pad_time, run_time_major_layers, zero_padding

from .speech_only_layers import AlibiBias, ConvDecoder1d, exact_span_mask


class Data2Vec2AudioModel(Data2VecAudioModel):
    """data2vec 2.0 speech model; see the module docstring."""

    def __init__(self, cfg: Data2Vec2AudioConfig):
        super().__init__(cfg)
        if cfg.clone_batch < 1:
            raise ValueError(f"model config: clone_batch={cfg.clone_batch} must be >= 1")
        # no mask embedding (masked frames are zeroed) and no Linear head (the decoder predicts)
        del self.mask_emb, self.final_proj
        self.final_proj = None
        self.register_buffer("mask_emb", torch.zeros(cfg.encoder_embed_dim), persistent=False)
        self.alibi: Optional[AlibiBias] = None
        if cfg.use_alibi:
            self.alibi = AlibiBias(cfg.encoder_attention_heads, cfg.alibi_scale_init, cfg.learned_alibi_scale)
        self.decoder: Optional[ConvDecoder1d] = ConvDecoder1d(
            cfg.encoder_embed_dim, cfg.decoder_dim, cfg.decoder_layers, cfg.decoder_kernel, cfg.decoder_groups
        )

    def teacher_scope(self) -> nn.Module:
        """v1's scope plus the ALiBi scales."""
        scope = super().teacher_scope()
        if self.alibi is not None:
            scope["alibi"] = self.alibi
        return scope

    def _encoder_input(self, x, padding_mask, blocks: nn.Module, keep: Optional[torch.Tensor] = None):
        """v1's, plus: with ``keep`` (B, T) bool (the same count in every row, no padding) only the
        kept frames go on; the ALiBi bias (B * H, T', T') from the frames' original positions.
        Returns (T', B, C), padding (B, T') or None, bias or None."""
        enc = self.encoder
        pos_conv = blocks["pos_conv"] if "pos_conv" in blocks else enc.pos_conv
        x = zero_padding(x, padding_mask)
        x = x + self.positions(pos_conv, x, padding_mask)
        B, T, C = x.shape
        positions = torch.arange(T, device=x.device).expand(B, T)
        if keep is not None:
            if padding_mask is not None:
                raise ValueError("encoding only the kept frames needs unpadded batches")
            x = x[keep].view(B, -1, C)  # the kept frames in their order; every row keeps as many
            positions = positions[keep].view(B, -1)
        if not enc.layer_norm_first:
            x = blocks["layer_norm"](x)
        x, padding_mask, pad = pad_time(x, padding_mask, enc.required_seq_len_multiple)
        bias = None
        if "alibi" in blocks:
            bias = blocks["alibi"](nn.functional.pad(positions, (0, pad)), padding_mask)
        return x.transpose(0, 1), padding_mask, bias

    def hidden_states(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        features, frame_padding = self.embed(source, padding_mask)
        T = features.size(1)
        x, padded, bias = self._encoder_input(features, frame_padding, self.teacher_scope())
        _, blocks = run_time_major_layers(self.encoder.layers, x, padded, capture="block", attn_bias=bias)
        return [y.transpose(0, 1)[:, :T] for y in [x, *blocks]], frame_padding

    def encode_student(self, x, padding_mask, layer: Optional[int] = None, keep: Optional[torch.Tensor] = None):
        enc = self.encoder
        T = x.size(1) if keep is None else int(keep[0].sum())
        x, padding_mask, bias = self._encoder_input(x, padding_mask, self.teacher_scope(), keep)
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        layers = enc.layers if layer is None else enc.layers[: layer + 1]
        x, _ = run_time_major_layers(layers, x, padding_mask, layerdrop=enc.layerdrop if self.training else 0.0, attn_bias=bias)
        if enc.layer_norm_first and layer is None:
            x = enc.layer_norm(x)
        return x.transpose(0, 1)[:, :T]

    def encode_teacher(self, features, padding_mask, blocks: nn.Module):
        T = features.size(1)
        x, padding_mask, bias = self._encoder_input(features, padding_mask, blocks)
        _, captured = run_time_major_layers(blocks["layers"], x, padding_mask, capture=self.cfg.target_feature,
                                 attention_window=self.cfg.teacher_attention_window, attn_bias=bias)
        return [y.transpose(0, 1)[:, :T] for y in captured]

    def regression_head(self) -> Optional[nn.Module]:
        """The conv decoder, (B, T, C) -> (B, T, C); None once removed for fine-tuning."""
        return self.decoder

    def drop_regression_head(self) -> None:
        """Removes the decoder (fine-tuning needs none)."""
        self.decoder = None

    # --- the 2.0 training forward ---------------------------------------------------------
    def clone_masks(self, batch: int, frames: int, sample_ids: Optional[Sequence[int]], device) -> torch.Tensor:
        """Masks (B * clone_batch, T) for the repeated batch, copy ``c`` of sample ``i`` at row
        ``i * clone_batch + c``; exactly int(mask_prob * T) frames masked in every row."""
        cfg = self.cfg
        return exact_span_mask(
            batch, frames, cfg.mask_prob, cfg.mask_length, seed=cfg.seed, num_updates=self.num_updates,
            sample_ids=sample_ids, copies=cfg.clone_batch, device=device,
        )

    def decode(self, kept: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Student outputs of the kept frames ``kept`` (R, K, C) and the masks (R, T) ->
        predictions (R, T, C) for every frame."""
        R, T = mask.shape
        kept = nn.functional.dropout(kept, p=self.cfg.decoder_input_dropout, training=self.training)
        full = kept.new_empty(R, T, kept.size(-1)).normal_(0.0, self.cfg.mask_noise_std)
        full[~mask] = kept.reshape(-1, kept.size(-1))  # row-major: each row's kept frames, in order
        return self.decoder(full)

    def predict_masked(self, features, padding_mask, targets, sample_ids=None, **unused):
        """2.0's student stage: ``clone_batch`` masked copies of ``features`` (B, T, C), only their
        kept frames encoded, the decoder predicting every frame. Returns (predictions (N, C) at
        the masked frames of every copy, their targets (N, C) from ``targets`` (B, T, C), the masks
        (B * clone_batch, T)). ``features_only`` (fine-tuning, features) runs v1's full-sequence path."""
        if padding_mask is not None:
            raise ValueError(
                "data2vec2_audio pre-training needs unpadded batches (each copy keeps the same number of "
                "frames): leave task.enable_padding=false so that fairseq crops a batch to its shortest clip"
            )
        B, T, _ = features.shape
        masks = self.clone_masks(B, T, sample_ids, features.device)  # (B * R, T)
        x = self.dropout_input(features).repeat_interleave(self.cfg.clone_batch, 0)  # (B * R, T, C), copies adjacent
        x = x.masked_fill(masks.unsqueeze(-1), 0.0)
        kept = self.encode_student(x, None, keep=~masks)  # (B * R, T - masked, C)
        pred = self.decode(kept, masks)[masks]  # (N, C): masked frames only
        target = targets.repeat_interleave(self.cfg.clone_batch, 0)[masks]
        return pred, target, masks


def trained_data2vec2_audio(cfg) -> "Data2Vec2AudioModel":
    """A speech-only model of config ``cfg`` after two updates (its teacher differs from its student)."""
    torch.manual_seed(0)
    model = Data2Vec2AudioModel(cfg)
    model.set_num_updates(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    source = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
    for update in (1, 2):
        out = model(source, sample_ids=[0, 1])
        opt.zero_grad()
        out["losses"]["regression"].sum().backward()
        opt.step()
        model.set_num_updates(update)
    return model.eval()


def write_data2vec2_audio_checkpoint(path: str, data: str, normalize: bool = True, **overrides) -> "Data2Vec2AudioModel":
    """A tiny ``data2vec2_audio`` (speech-only 2.0 layout) checkpoint after two updates, as fairseq's trainer saved
    them (cfg with the model and d2v_audio_pretraining task, the teacher under ``_ema``)."""
    from fairseq.dataclass.configs import FairseqConfig
    from omegaconf import OmegaConf

    from d2v_fairseq.tasks.audio_pretraining import CheckedAudioPretrainingConfig

    from .tiny import TINY_AUDIO

    root = OmegaConf.structured(FairseqConfig)
    fields = dict(TINY_AUDIO, mask_prob=0.5, mask_length=5, clone_batch=2, decoder_dim=16, decoder_groups=4,
                  conv_pos_groups=4, decoder_input_dropout=0.0)
    root.model = OmegaConf.merge(OmegaConf.structured(Data2Vec2AudioConfig), fields, overrides)
    root.model._name = "data2vec2_audio"
    root.task = OmegaConf.merge(OmegaConf.structured(CheckedAudioPretrainingConfig),
                                {"_name": "d2v_audio_pretraining", "data": data, "normalize": normalize})
    model = trained_data2vec2_audio(root.model)
    torch.save({"cfg": OmegaConf.to_container(root, resolve=True, enum_to_str=True), "model": model.state_dict(),
                "optimizer_history": [{"criterion_name": "Data2VecRegressionCriterion", "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {}, "num_updates": 2}], "extra_state": {}}, path)
    return model
