"""The tiny data2vec_audio settings shared by the tests and the reference-checkpoint helper
(plain values: importing this module registers nothing with fairseq)."""

TINY_AUDIO = dict(
    conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 2",
    extractor_mode="layer_norm",
    encoder_layers=3,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=4,
    conv_pos=15,
    conv_pos_groups=4,
    pos_conv_depth=3,
    average_top_k_layers=2,
    instance_norm_target_layer=True,
    encoder_layerdrop=0.0,
    mask_prob=0.65,
    mask_length=3,
    ema_anneal_end_step=100,
)
