"""Images: ``data2vec_vision`` (and its classifier) -> transformers' ``Data2VecVisionModel`` /
``Data2VecVisionForImageClassification``."""

from typing import Dict

import torch

from ..data.images import IMAGENET_MEAN, IMAGENET_STD
from ..modules.vit import LAYER_NORM_EPS
from .common import import_transformers


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
    tf = import_transformers()
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
