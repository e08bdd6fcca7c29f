"""Checkpoints as the fairseq of early 2022 wrote them (the data2vec releases): their saved
task and model configs lack the fields fairseq gained since, and hold a few it has dropped."""

# audio_pretraining / audio_finetuning fields added after the data2vec release
TASK_FIELDS_ADDED_SINCE = {
    "multi_corpus_keys", "multi_corpus_sampling_weights", "rebuild_batches", "precompute_mask_config",
    "post_save_script", "subsample", "seed", "target_dictionary",
}
TASK_FIELDS_DROPPED_SINCE = {"precompute_mask_indices": False, "inferred_w2v_config": None}
# wav2vec_ctc fields added since
CTC_MODEL_FIELDS_ADDED_SINCE = {
    "update_alibi", "zero_mask", "load_ema", "layer_decay", "layer_type", "adp_num", "adp_dim", "adp_act_fn",
    "adp_trf_idx", "freeze_regex", "blank_weight", "blank_mode", "drop_path", "offload_activations",
    "min_params_to_wrap", "checkpoint_activations", "ddp_backend",
}
# data2vec_audio (wav2vec 2.0) fields added since, and this package's own additions
AUDIO_MODEL_FIELDS_ADDED_SINCE = {
    "adp_num", "adp_dim", "adp_act_fn", "adp_trf_idx", "attn_type", "pos_enc_type", "fp16",
    "depthwise_conv_kernel_size", "crop_seq_to_multiple", "layer_type", "checkpoint_activations",
    "target_feature", "teacher_attention_window", "seed",
}
AUDIO_MODEL_FIELDS_DROPPED_SINCE = {"min_target_var": 0.1, "min_pred_var": 0.01, "max_update": 400000}


def _as_2022(cfg: dict, added: set, dropped: dict) -> dict:
    old = {k: v for k, v in cfg.items() if k not in added}
    old.update(dropped)
    return old


def pretrained_cfg_as_2022(cfg: dict) -> dict:
    """A pre-training checkpoint's cfg (a plain dict), with task and model as in 2022."""
    cfg = dict(cfg)
    cfg["task"] = _as_2022(cfg["task"], TASK_FIELDS_ADDED_SINCE, TASK_FIELDS_DROPPED_SINCE)
    cfg["model"] = _as_2022(cfg["model"], AUDIO_MODEL_FIELDS_ADDED_SINCE, AUDIO_MODEL_FIELDS_DROPPED_SINCE)
    return cfg


def finetuned_cfg_as_2022(cfg: dict, ours=()) -> dict:
    """A fine-tuned checkpoint's cfg as fairseq's own audio_finetuning wrote it in 2022: task
    audio_finetuning (without this package's task fields ``ours``), model wav2vec_ctc, and the
    pre-trained w2v_args of that time."""
    cfg = dict(cfg)
    task = {k: v for k, v in cfg["task"].items() if k not in set(ours)}
    cfg["task"] = dict(_as_2022(task, TASK_FIELDS_ADDED_SINCE, TASK_FIELDS_DROPPED_SINCE), _name="audio_finetuning")
    model = _as_2022(cfg["model"], CTC_MODEL_FIELDS_ADDED_SINCE, {})
    w2v_args = pretrained_cfg_as_2022(model["w2v_args"])
    w2v_args["task"] = {k: v for k, v in w2v_args["task"].items() if k != "check_audio_files"}
    w2v_args["task"]["_name"] = "audio_pretraining"
    model["w2v_args"] = w2v_args
    cfg["model"] = model
    return cfg
