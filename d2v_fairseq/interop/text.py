"""Text: ``data2vec_text`` (and its sentence classifier) -> transformers' ``Data2VecTextModel`` /
``Data2VecTextForSequenceClassification``, with a tokenizer that gives fairseq's token ids."""

from typing import Dict

import torch

from ..data.text import find_sp_model
from ..modules.ema import EMA_KEY, LEGACY_UPDATES_KEY
from .common import NotExportable, dictionary_vocabulary, import_transformers


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
        if key in (EMA_KEY, LEGACY_UPDATES_KEY) or key.startswith("encoder.regression_head.") or key.endswith(".version"):
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

    tf = import_transformers()
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
    tf = import_transformers()
    dictionary = model.dictionary
    if sp_model is None:
        data = cfg.task.data
        sp_model = find_sp_model(data)
        if sp_model is None:
            raise FileNotFoundError(f"no sentencepiece.bpe.model in {data}: pass --sp-model (the model "
                                    "d2v prepare text trained for this checkpoint's data)")
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
