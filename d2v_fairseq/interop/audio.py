"""Speech: ``data2vec_audio`` / ``data2vec2_audio`` (and their CTC fine-tuning) -> transformers'
``Data2VecAudioModel`` / ``Data2VecAudioForCTC``."""

import json
import os
from typing import Dict, Optional

import torch

from ..modules.ema import EMA_KEY, LEGACY_UPDATES_KEY
from .common import NotExportable, dictionary_vocabulary, import_transformers


def audio_config(cfg, vocab_size: int = 32) -> Dict:
    """transformers' Data2VecAudioConfig fields for our data2vec_audio config ``cfg``."""
    from ..modules.conv_frontend import parse_conv_spec

    if getattr(cfg, "use_alibi", False):
        raise NotExportable("use_alibi=true (data2vec 2.0's ALiBi attention bias): transformers' Data2VecAudio "
                            "has no attention bias, so its outputs would differ; pre-train with model.use_alibi=false "
                            "to export a 2.0 model")
    if cfg.layer_norm_first:
        raise NotExportable("layer_norm_first=true (pre-LN blocks): transformers' Data2VecAudio has post-LN blocks only")
    if cfg.extractor_mode != "layer_norm":
        raise NotExportable(f"extractor_mode={cfg.extractor_mode}: transformers' Data2VecAudio conv front end "
                            "uses layer norm in every layer")
    conv = parse_conv_spec(cfg.conv_feature_layers, "model.conv_feature_layers")
    depth = cfg.pos_conv_depth
    if depth < 2:
        raise NotExportable("pos_conv_depth=1 (one weight-normed positional conv, the wav2vec 2.0 layout): "
                            "transformers' Data2VecAudio has a stack of plain convs")
    return dict(
        hidden_size=cfg.encoder_embed_dim, num_hidden_layers=cfg.encoder_layers,
        num_attention_heads=cfg.encoder_attention_heads, intermediate_size=cfg.encoder_ffn_embed_dim,
        hidden_act=str(cfg.activation_fn), layer_norm_eps=1e-5,
        conv_dim=[c[0] for c in conv], conv_kernel=[c[1] for c in conv], conv_stride=[c[2] for c in conv],
        conv_bias=cfg.conv_bias, feat_extract_activation="gelu",
        num_conv_pos_embeddings=depth, conv_pos_kernel_size=max(3, cfg.conv_pos // depth),
        num_conv_pos_embedding_groups=cfg.conv_pos_groups,
        hidden_dropout=cfg.dropout, attention_dropout=cfg.attention_dropout, activation_dropout=cfg.activation_dropout,
        feat_proj_dropout=cfg.dropout_input, layerdrop=cfg.encoder_layerdrop,
        mask_time_prob=cfg.mask_prob, mask_time_length=cfg.mask_length,
        vocab_size=vocab_size,
    )


def audio_state(state: Dict[str, torch.Tensor], prefix: str = "") -> Dict[str, torch.Tensor]:
    """Our data2vec_audio weights (keys under ``prefix``) -> transformers' Data2VecAudioModel keys.
    The teacher, the regression head (2.0: the decoder) and update counters are not part of that model."""
    out = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix):]
        if k in (EMA_KEY, LEGACY_UPDATES_KEY) or k.startswith(("final_proj.", "decoder.")) or k.endswith(".version"):
            continue
        parts = k.split(".")
        if k == "mask_emb":
            new = "masked_spec_embed"
        elif k.startswith("feature_extractor.conv_layers."):
            i, rest = parts[2], ".".join(parts[3:])  # i.0.weight (conv), i.2.1.* (layer norm)
            new = f"feature_extractor.conv_layers.{i}." + {"0.weight": "conv.weight", "0.bias": "conv.bias",
                                                          "2.1.weight": "layer_norm.weight",
                                                          "2.1.bias": "layer_norm.bias"}[rest]
        elif k.startswith("layer_norm."):
            new = "feature_projection." + k
        elif k.startswith("post_extract_proj."):
            new = "feature_projection.projection." + parts[-1]
        elif k.startswith("encoder.pos_conv."):
            new = f"encoder.pos_conv_embed.layers.{parts[2]}.conv.{parts[-1]}"  # j.0.weight: the conv
        elif k.startswith("encoder.layer_norm."):
            new = k
        elif k.startswith("encoder.layers."):
            i, rest = parts[2], ".".join(parts[3:])
            rest = (rest.replace("self_attn_layer_norm.", "layer_norm.").replace("self_attn.", "attention.")
                    .replace("fc1.", "feed_forward.intermediate_dense.").replace("fc2.", "feed_forward.output_dense."))
            new = f"encoder.layers.{i}.{rest}"
        else:
            raise NotExportable(f"{key}: no place in transformers' Data2VecAudioModel")
        out[new] = value
    return out


def with_mask_embedding(weights: Dict[str, torch.Tensor], model_cfg) -> Dict[str, torch.Tensor]:
    """data2vec 2.0 zeroes masked frames instead of embedding them: its masked_spec_embed is zeros."""
    if "masked_spec_embed" not in weights:
        weights["masked_spec_embed"] = torch.zeros(model_cfg.encoder_embed_dim)
    return weights


def export_audio(model, cfg, task, out_dir: str, state: Optional[Dict[str, torch.Tensor]] = None) -> str:
    """Writes the pre-trained or CTC model; returns the transformers class name written. ``state``:
    the weights in the wav2vec layout when the loaded model holds them otherwise (a speech-only
    2.0 ``data2vec2_audio`` checkpoint as read from its file; its ``cfg.model`` is that layout's)."""
    tf = import_transformers()
    is_ctc = hasattr(model, "w2v_encoder")
    body_cfg = cfg.model.w2v_args.model if is_ctc else cfg.model
    state = model.state_dict() if state is None else state
    extractor = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                            do_normalize=bool(cfg.task.normalize), return_attention_mask=True)
    if not is_ctc:
        config = tf.Data2VecAudioConfig(**audio_config(body_cfg))
        hf = tf.Data2VecAudioModel(config)
        hf.load_state_dict(with_mask_embedding(audio_state(state), body_cfg), strict=True)
        hf.save_pretrained(out_dir, safe_serialization=True)
        extractor.save_pretrained(out_dir)
        return "Data2VecAudioModel"
    dictionary = task.target_dictionary
    config = tf.Data2VecAudioConfig(**audio_config(body_cfg, vocab_size=len(dictionary)),
                                    pad_token_id=dictionary.bos(), ctc_loss_reduction="sum", ctc_zero_infinity=True)
    hf = tf.Data2VecAudioForCTC(config)
    weights = {"data2vec_audio." + k: v
               for k, v in with_mask_embedding(audio_state(state, "w2v_encoder.w2v_model."), body_cfg).items()}
    weights["lm_head.weight"], weights["lm_head.bias"] = state["w2v_encoder.proj.weight"], state["w2v_encoder.proj.bias"]
    hf.load_state_dict(weights, strict=True)
    hf.save_pretrained(out_dir, safe_serialization=True)
    vocab_path = os.path.join(out_dir, "vocab.json")  # save_pretrained made out_dir
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(dictionary_vocabulary(dictionary), f, ensure_ascii=False)
    symbols = dictionary.symbols
    tokenizer = tf.Wav2Vec2CTCTokenizer(vocab_path, pad_token=symbols[dictionary.bos()], unk_token=symbols[dictionary.unk()],
                                        bos_token=None, eos_token=None, word_delimiter_token="|")
    tf.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out_dir)
    return "Data2VecAudioForCTC"
