"""Export to Hugging Face transformers, offline: ``d2v export CKPT OUT_DIR``.

Reads a checkpoint of this package (or a released-format one that loads into it) and writes a
directory that transformers' ``from_pretrained(OUT_DIR)`` loads, weights as safetensors:

* pre-trained ``data2vec_audio`` -> ``Data2VecAudioModel`` + the feature extractor's config
  (16 kHz, ``do_normalize`` as the task's ``normalize``);
* a ``data2vec2_audio`` checkpoint (the speech-only 2.0 layout) without ALiBi (``use_alibi=false``) -> the same class
  (its masked frames are zeros: ``masked_spec_embed`` is zero); with ALiBi it is refused, since
  transformers' Data2VecAudio has no attention bias; ``data2vec_multi`` (data2vec 2.0) has no
  transformers class and is refused;
* CTC fine-tuned (``wav2vec_ctc`` around ``data2vec_audio``) -> ``Data2VecAudioForCTC`` + a
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

import logging
from typing import Dict, Tuple

from ..hub import load_checkpoint
from .audio import audio_config, export_audio
from .common import NotExportable
from .fairseq import export_fairseq
from .text import export_text
from .vision import export_vision

__all__ = ["NotExportable", "audio_config", "export", "export_fairseq"]

logger = logging.getLogger(__name__)


def wav2vec_layout_state(checkpoint: str) -> Dict:
    """A ``data2vec2_audio`` (speech-only 2.0 layout) checkpoint's weights as its file holds them (wav2vec layout)."""
    from ..hub import read_checkpoint
    from ..models.data2vec2_audio import is_wav2vec_layout

    state = read_checkpoint(checkpoint)["model"]
    if not is_wav2vec_layout(state):
        raise NotExportable(f"{checkpoint}: a data2vec2_audio checkpoint saved in data2vec_multi's layout (trained on "
                            "after the merge): transformers has no class for it")
    return state


def export(checkpoint: str, out_dir: str, data_dir: str = None, sp_model: str = None) -> Tuple[str, str]:
    """Exports ``checkpoint`` to ``out_dir``; returns (transformers class, out_dir)."""
    overrides = {"data": data_dir} if data_dir else None
    model, cfg, task = load_checkpoint(checkpoint, arg_overrides=overrides)
    model.eval()
    name = cfg.model._name
    speech = ("data2vec_audio", "data2vec2_audio")
    if name == "data2vec2_audio":  # a speech-only-layout checkpoint: its file holds the wav2vec layout
        written = export_audio(model, cfg, task, out_dir, state=wav2vec_layout_state(checkpoint))
    elif name in speech or (name == "wav2vec_ctc" and cfg.model.w2v_args.model._name in speech):
        if name == "wav2vec_ctc" and cfg.model.w2v_args.model._name == "data2vec2_audio":
            raise NotExportable(f"{checkpoint}: CTC fine-tuned from a data2vec2_audio checkpoint (speech-only 2.0 layout): its weights "
                                "are saved in data2vec_multi's layout, which transformers has no class for")
        written = export_audio(model, cfg, task, out_dir)
    elif name == "data2vec_text":
        written = export_text(model, cfg, task, out_dir, sp_model)
    elif name in ("data2vec_vision", "data2vec_image_classification"):
        written = export_vision(model, cfg, out_dir)
    else:
        raise NotExportable(f"{checkpoint}: model {name}: export covers data2vec_audio (and its CTC fine-tuning), "
                            "data2vec2_audio (speech-only 2.0 layout) checkpoints, data2vec_text, data2vec_vision and its image "
                            "classifier (transformers has no data2vec 2.0 model: data2vec_multi stays in fairseq's layout)")
    logger.info(f"{checkpoint} -> {out_dir} ({written})")
    return written, out_dir
