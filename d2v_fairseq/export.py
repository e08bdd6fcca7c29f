"""Export to Hugging Face transformers, offline: ``python -m d2v_fairseq.export CKPT OUT_DIR``
(console script ``d2v-export``).

Reads a checkpoint of this package (or a released-format one that loads into it) and writes a
directory that transformers' ``from_pretrained(OUT_DIR)`` loads, weights as safetensors:

* pre-trained ``data2vec_audio`` -> ``Data2VecAudioModel`` + the feature extractor's config
  (16 kHz, ``do_normalize`` as the task's ``normalize``);
* pre-trained ``data2vec2_audio`` without ALiBi (``use_alibi=false``) -> the same class (its
  masked frames are zeros: ``masked_spec_embed`` is zero); with ALiBi it is refused, since
  transformers' Data2VecAudio has no attention bias;
* CTC fine-tuned (``wav2vec_ctc`` around either) -> ``Data2VecAudioForCTC`` + a
  processor: tokenizer vocabulary from the fine-tuning dictionary (fairseq's indices kept),
  ``|`` as word delimiter, the CTC blank (``<s>``, index 0) as the pad token, so that
  ``pipeline("automatic-speech-recognition", model=OUT_DIR)`` transcribes;
* ``data2vec_text`` -> ``Data2VecTextModel``, or ``Data2VecTextForSequenceClassification`` when
  the checkpoint has a classification head (fairseq's sentence_prediction), with a fast
  tokenizer made from the package's sentencepiece BPE and the checkpoint's fairseq dictionary
  (``--sp-model``; by default ``sentencepiece.bpe.model`` beside the data's ``dict.txt``).
  The tokenizer gives fairseq's token ids; BPE pieces the dictionary lacks (fairseq reads them
  as ``<unk>``) get ids after it whose embeddings are copies of ``<unk>``'s, so the features
  are the same.
* ``data2vec_vision`` -> ``Data2VecVisionModel``; its fine-tuned classifier
  (``data2vec_image_classification``) -> ``Data2VecVisionForImageClassification`` (mean
  pooling), each with an image-processor config (size, ImageNet mean/std).

Config fields carry the model's real values (layer-norm eps, positional-conv kernel and depth,
conv layers, ...). What transformers cannot represent exactly (a pre-LN speech model, a
group-norm conv front end) stops with an error that says why, never an approximate export.
transformers is an optional extra: ``pip install .[hf]``.
"""

import argparse
import json
import logging
import os
from typing import Dict, Tuple

import torch

from .data.images import IMAGENET_MEAN, IMAGENET_STD
from .modules.vit import LAYER_NORM_EPS

logger = logging.getLogger(__name__)


class NotExportable(ValueError):
    """The model has a feature transformers' class cannot represent exactly."""


def _transformers():
    try:
        import transformers
    except ImportError as e:  # optional dependency
        raise ImportError("export needs transformers: pip install '.[hf]' (transformers==5.24.0)") from e
    return transformers


# --- speech -----------------------------------------------------------------------------------
def audio_config(cfg, vocab_size: int = 32) -> Dict:
    """transformers' Data2VecAudioConfig fields for our data2vec_audio config ``cfg``."""
    from .models.data2vec_audio import parse_conv_layers

    if getattr(cfg, "use_alibi", False):
        raise NotExportable("use_alibi=true (data2vec 2.0's ALiBi attention bias): transformers' Data2VecAudio "
                            "has no attention bias, so its outputs would differ; pre-train with model.use_alibi=false "
                            "to export a 2.0 model")
    if cfg.layer_norm_first:
        raise NotExportable("layer_norm_first=true (pre-LN blocks): transformers' Data2VecAudio has post-LN blocks only")
    if cfg.extractor_mode != "layer_norm":
        raise NotExportable(f"extractor_mode={cfg.extractor_mode}: transformers' Data2VecAudio conv front end "
                            "uses layer norm in every layer")
    conv = parse_conv_layers(cfg.conv_feature_layers)
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
        if k in ("_ema", "_ema_updates") or k.startswith(("final_proj.", "decoder.")) or k.endswith(".version"):
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


def with_mask_embedding(weights: Dict[str, torch.Tensor], body) -> Dict[str, torch.Tensor]:
    """data2vec 2.0 zeroes masked frames instead of embedding them: its masked_spec_embed is zeros."""
    if "masked_spec_embed" not in weights:
        weights["masked_spec_embed"] = torch.zeros(body.cfg.encoder_embed_dim)
    return weights


def dictionary_vocabulary(dictionary) -> Dict[str, int]:
    """A fairseq dictionary as a tokenizer vocabulary, indices unchanged (for CTC: blank = <s> = 0)."""
    return {symbol: index for index, symbol in enumerate(dictionary.symbols)}


def export_audio(model, cfg, task, out_dir: str) -> str:
    """Writes the pre-trained or CTC model; returns the transformers class name written."""
    tf = _transformers()
    is_ctc = hasattr(model, "w2v_encoder")
    body = model.w2v_encoder.w2v_model if is_ctc else model
    state = model.state_dict()
    extractor = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                            do_normalize=bool(cfg.task.normalize), return_attention_mask=True)
    if not is_ctc:
        config = tf.Data2VecAudioConfig(**audio_config(body.cfg))
        hf = tf.Data2VecAudioModel(config)
        hf.load_state_dict(with_mask_embedding(audio_state(state), body), strict=True)
        hf.save_pretrained(out_dir, safe_serialization=True)
        extractor.save_pretrained(out_dir)
        return "Data2VecAudioModel"
    dictionary = task.target_dictionary
    config = tf.Data2VecAudioConfig(**audio_config(body.cfg, vocab_size=len(dictionary)),
                                    pad_token_id=dictionary.bos(), ctc_loss_reduction="sum", ctc_zero_infinity=True)
    hf = tf.Data2VecAudioForCTC(config)
    weights = {"data2vec_audio." + k: v
               for k, v in with_mask_embedding(audio_state(state, "w2v_encoder.w2v_model."), body).items()}
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


# --- text -------------------------------------------------------------------------------------
def text_config(model) -> Dict:
    """transformers' Data2VecTextConfig fields for our data2vec_text ``model``."""
    body = model.body
    layer = body.layers[0]
    if layer.normalize_before:
        raise NotExportable("normalize_before=true (pre-LN blocks): transformers' Data2VecText is post-LN")
    if body.layernorm_embedding is None or body.embed_scale != 1.0:
        raise NotExportable("transformers' Data2VecText needs layernorm_embedding=true and no_scale_embedding=true")
    if not isinstance(body.embed_positions, torch.nn.Embedding):
        raise NotExportable("transformers' Data2VecText needs learned positions (learned_pos=true)")
    pad = model.dictionary.pad()
    return dict(
        hidden_size=body.embed_tokens.embedding_dim, num_hidden_layers=len(body.layers),
        num_attention_heads=layer.self_attn.num_heads, intermediate_size=layer.fc1.out_features,
        hidden_act=str(model.cfg.transformer.activation_fn),
        max_position_embeddings=body.embed_positions.weight.size(0), type_vocab_size=1,
        layer_norm_eps=layer.final_layer_norm.eps, pad_token_id=pad, bos_token_id=model.dictionary.bos(),
        eos_token_id=model.dictionary.eos(),
        hidden_dropout_prob=body.dropout_module.p, attention_probs_dropout_prob=layer.self_attn.dropout_module.p,
    )


def text_state(state: Dict[str, torch.Tensor], extra_rows: int, unk: int) -> Dict[str, torch.Tensor]:
    """Our data2vec_text weights -> transformers' Data2VecText keys (under ``data2vec_text.``
    for the classification model: the caller prefixes); classification head -> ``classifier.``."""
    out = {}
    enc = "encoder.sentence_encoder."
    for key, value in state.items():
        if key in ("_ema", "_ema_updates") or key.startswith("encoder.regression_head.") or key.endswith(".version"):
            continue
        if key.startswith("classification_heads."):
            out["classifier." + key.split(".", 2)[2]] = value
            continue
        k = key[len(enc):]
        parts = k.split(".")
        if k == "embed_tokens.weight":
            new = "embeddings.word_embeddings.weight"
            value = torch.cat([value, value[unk:unk + 1].expand(extra_rows, -1)]) if extra_rows else value
        elif k == "embed_positions.weight":
            new = "embeddings.position_embeddings.weight"
        elif k.startswith("layernorm_embedding."):
            new = "embeddings.LayerNorm." + parts[-1]
        elif k.startswith("layers."):
            i, rest = parts[1], ".".join(parts[2:])
            for ours, theirs in (("self_attn.q_proj.", "attention.self.query."), ("self_attn.k_proj.", "attention.self.key."),
                                 ("self_attn.v_proj.", "attention.self.value."),
                                 ("self_attn.out_proj.", "attention.output.dense."),
                                 ("self_attn_layer_norm.", "attention.output.LayerNorm."),
                                 ("fc1.", "intermediate.dense."), ("fc2.", "output.dense."),
                                 ("final_layer_norm.", "output.LayerNorm.")):
                if rest.startswith(ours):
                    rest = theirs + rest[len(ours):]
                    break
            new = f"encoder.layer.{i}.{rest}"
        else:
            raise NotExportable(f"{key}: no place in transformers' Data2VecText")
        out[new] = value
    out["embeddings.token_type_embeddings.weight"] = torch.zeros(1, state[enc + "embed_tokens.weight"].size(1))
    return out


def text_tokenizer(sp_model: str, dictionary, max_length: int):
    """A fast tokenizer giving fairseq's ids for our sentencepiece BPE; returns (tokenizer,
    number of pieces the dictionary lacks, which get ids after it)."""
    import importlib

    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tf = _transformers()
    generate_merges = importlib.import_module("transformers.convert_slow_tokenizer").generate_merges
    sp = spm.SentencePieceProcessor(model_file=sp_model)
    pieces = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    vocab = dictionary_vocabulary(dictionary)
    missing = [p for p in pieces if p not in vocab]
    for piece in missing:
        vocab[piece] = len(vocab)
    bpe = models.BPE(vocab=vocab, merges=generate_merges(pieces), unk_token=dictionary.unk_word, fuse_unk=True)
    tokenizer = Tokenizer(bpe)
    # sentencepiece's default normalization (nmt_nfkc): NFKC, runs of spaces as one, no edge spaces
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " "),
                                                 normalizers.Strip()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = dictionary.bos_word, dictionary.eos_word
    tokenizer.post_processor = processors.RobertaProcessing((eos, dictionary.eos()), (bos, dictionary.bos()),
                                                            trim_offsets=False, add_prefix_space=False)
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, cls_token=bos,
                                      sep_token=eos, unk_token=dictionary.unk_word, pad_token=dictionary.pad_word,
                                      mask_token="<mask>", model_max_length=max_length)
    return fast, len(missing)


def export_text(model, cfg, task, out_dir: str, sp_model: str = None) -> str:
    """Writes Data2VecTextModel (or ...ForSequenceClassification) and its tokenizer."""
    tf = _transformers()
    dictionary = model.dictionary
    if sp_model is None:
        data = cfg.task.data
        candidates = [os.path.join(data, "sentencepiece.bpe.model"), os.path.join(data, "..", "sentencepiece.bpe.model")]
        sp_model = next((c for c in candidates if os.path.isfile(c)), None)
        if sp_model is None:
            raise FileNotFoundError(f"no sentencepiece.bpe.model in {data}: pass --sp-model (the model "
                                    "manifests/text.py trained for this checkpoint's data)")
    tokenizer, extra = text_tokenizer(sp_model, dictionary, model.body.max_source_positions)
    fields = text_config(model)
    fields["vocab_size"] = len(dictionary) + extra
    weights = text_state(model.state_dict(), extra, dictionary.unk())
    heads = list(model.classification_heads)
    if len(heads) > 1:
        raise NotExportable(f"{len(heads)} classification heads {heads}: transformers' class holds one")
    if heads and model.cfg.classifier_pooling != "cls":
        raise NotExportable(f"classifier_pooling={model.cfg.classifier_pooling}: transformers' "
                            "Data2VecTextForSequenceClassification reads the <s> output only")
    if heads:
        head = model.classification_heads[heads[0]]
        config = tf.Data2VecTextConfig(**fields, num_labels=head.out_proj.out_features, classifier_dropout=0.0)
        hf = tf.Data2VecTextForSequenceClassification(config)
        weights = {(k if k.startswith("classifier.") else "data2vec_text." + k): v for k, v in weights.items()}
        written = "Data2VecTextForSequenceClassification"
    else:
        config = tf.Data2VecTextConfig(**fields)
        hf = tf.Data2VecTextModel(config, add_pooling_layer=False)
        written = "Data2VecTextModel"
    hf.load_state_dict(weights, strict=True)
    hf.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return written


# --- vision -----------------------------------------------------------------------------------
def vision_config(encoder, classifier=None) -> Dict:
    """Data2VecVisionConfig fields with the model's real values (eps 1e-6, shared relative
    position bias, no absolute positions, layer scale, mean pooling for the classifier)."""
    cfg = encoder.cfg
    blocks = encoder.encoder.blocks
    fields = dict(
        image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=cfg.in_channels,
        hidden_size=cfg.embed_dim, num_hidden_layers=len(blocks), num_attention_heads=cfg.num_heads,
        intermediate_size=blocks[0].mlp[0].out_features, hidden_act="gelu", layer_norm_eps=LAYER_NORM_EPS,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0,
        use_mask_token=True, use_absolute_position_embeddings=False, use_relative_position_bias=False,
        use_shared_relative_position_bias=True,
        layer_scale_init_value=cfg.layer_scale_init_value if blocks[0].gamma_1 is not None else 0.0,
        use_mean_pooling=classifier is not None,
    )
    if classifier is not None:
        fields["num_labels"] = classifier.head.out_features
    return fields


def vision_state(encoder, classifier=None, prefix: str = "") -> Dict[str, torch.Tensor]:
    """Our ViT's weights under transformers' names (qkv split into query/key/value)."""
    out = {
        prefix + "embeddings.cls_token": encoder.cls_emb,
        prefix + "embeddings.mask_token": encoder.mask_emb,
        prefix + "embeddings.patch_embeddings.projection.weight": encoder.patch_embed.proj.weight,
        prefix + "embeddings.patch_embeddings.projection.bias": encoder.patch_embed.proj.bias,
        prefix + "encoder.relative_position_bias.relative_position_bias_table":
            encoder.encoder.rel_pos_bias.relative_position_bias_table,
    }
    for i, block in enumerate(encoder.encoder.blocks):
        at = f"{prefix}encoder.layer.{i}."
        query, key, value = block.attn.qkv.weight.chunk(3)
        out.update({
            at + "attention.attention.query.weight": query, at + "attention.attention.query.bias": block.attn.q_bias,
            at + "attention.attention.key.weight": key,
            at + "attention.attention.value.weight": value, at + "attention.attention.value.bias": block.attn.v_bias,
            at + "attention.output.dense.weight": block.attn.proj.weight,
            at + "attention.output.dense.bias": block.attn.proj.bias,
            at + "intermediate.dense.weight": block.mlp[0].weight, at + "intermediate.dense.bias": block.mlp[0].bias,
            at + "output.dense.weight": block.mlp[2].weight, at + "output.dense.bias": block.mlp[2].bias,
            at + "layernorm_before.weight": block.norm1.weight, at + "layernorm_before.bias": block.norm1.bias,
            at + "layernorm_after.weight": block.norm2.weight, at + "layernorm_after.bias": block.norm2.bias,
        })
        if block.gamma_1 is not None:
            out.update({at + "lambda_1": block.gamma_1, at + "lambda_2": block.gamma_2})
    if classifier is None:  # the pre-trained model's output: the final LayerNorm over all tokens
        out.update({prefix + "layernorm.weight": encoder.encoder.norm.weight,
                    prefix + "layernorm.bias": encoder.encoder.norm.bias})
    else:  # the classifier: mean of the patch tokens -> LayerNorm (transformers' pooler) -> head
        out.update({prefix + "pooler.layernorm.weight": classifier.fc_norm.weight,
                    prefix + "pooler.layernorm.bias": classifier.fc_norm.bias,
                    "classifier.weight": classifier.head.weight, "classifier.bias": classifier.head.bias})
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def export_vision(model, cfg, out_dir: str) -> str:
    """Writes Data2VecVisionModel (pre-trained) or ...ForImageClassification and an image
    processor config (evaluation resize and centre crop, ImageNet mean/std)."""
    tf = _transformers()
    classifier = model if cfg.model._name == "data2vec_image_classification" else None
    encoder = model.encoder if classifier is not None else model
    config = tf.Data2VecVisionConfig(**vision_config(encoder, classifier))
    if classifier is not None:
        hf = tf.Data2VecVisionForImageClassification(config)
        weights = vision_state(encoder, classifier, prefix="data2vec_vision.")
        written = "Data2VecVisionForImageClassification"
    else:
        hf = tf.Data2VecVisionModel(config, add_pooling_layer=False)
        weights = vision_state(encoder)
        written = "Data2VecVisionModel"
    hf.load_state_dict(weights, strict=True)
    hf.save_pretrained(out_dir, safe_serialization=True)
    size = encoder.cfg.image_size
    # our evaluation view: bicubic resize to size / 0.875, centre crop (transformers' BEiT
    # processor resizes to a square rather than the short side: equal for square images)
    processor = tf.BeitImageProcessor(
        do_resize=True, size={"height": round(size / 0.875), "width": round(size / 0.875)}, resample=3,
        do_center_crop=True, crop_size={"height": size, "width": size}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), do_reduce_labels=False,
    )
    processor.save_pretrained(out_dir)
    return written


# --- entry point --------------------------------------------------------------------------------
def export(checkpoint: str, out_dir: str, data_dir: str = None, sp_model: str = None) -> Tuple[str, str]:
    """Exports ``checkpoint`` to ``out_dir``; returns (transformers class, out_dir)."""
    from .checkpoint import load_pretrained

    overrides = {"data": data_dir} if data_dir else None
    model, cfg, task = load_pretrained(checkpoint, arg_overrides=overrides)
    model.eval()
    name = cfg.model._name
    speech = ("data2vec_audio", "data2vec2_audio")
    if name in speech or (name == "wav2vec_ctc" and cfg.model.w2v_args.model._name in speech):
        written = export_audio(model, cfg, task, out_dir)
    elif name == "data2vec_text":
        written = export_text(model, cfg, task, out_dir, sp_model)
    elif name in ("data2vec_vision", "data2vec_image_classification"):
        written = export_vision(model, cfg, out_dir)
    else:
        raise NotExportable(f"{checkpoint}: model {name}: export covers data2vec_audio, data2vec2_audio (and their CTC "
                            "fine-tuning), data2vec_text, data2vec_vision and its image classifier")
    logger.info(f"{checkpoint} -> {out_dir} ({written})")
    return written, out_dir


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out_dir")
    parser.add_argument("--data", help="the data directory of a fine-tuned checkpoint (its dictionary), "
                        "if it moved since fine-tuning")
    parser.add_argument("--sp-model", help="text: the sentencepiece model of the checkpoint's data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written, out_dir = export(args.checkpoint, args.out_dir, args.data, args.sp_model)
    print(f"wrote {written} to {out_dir}")


if __name__ == "__main__":
    main()
