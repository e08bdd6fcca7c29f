"""``d2v_hubert_ctc``: fairseq's ``hubert_ctc`` (HuBERT's encoder and a linear CTC head) under a
config that also declares ``autoregressive``.

fairseq 0.12.3's ``HubertEncoder`` reads ``cfg.autoregressive``, which only its seq2seq config
declares, so ``hubert_ctc`` cannot be built from its own structured config ("Key 'autoregressive'
not in 'HubertCtcConfig'"). The model, its state-dict names and its behaviour are fairseq's; the
method study fine-tunes HuBERT checkpoints through it.
"""

from dataclasses import dataclass, field

from fairseq.models import register_model
from fairseq.models.hubert.hubert_asr import HubertCtc, HubertCtcConfig


@dataclass
class HubertCtcFixedConfig(HubertCtcConfig):
    autoregressive: bool = field(default=False, metadata={"help": "false for CTC (read by fairseq's HubertEncoder)"})


@register_model("d2v_hubert_ctc", dataclass=HubertCtcFixedConfig)
class HubertCtcModel(HubertCtc):
    """fairseq's ``HubertCtc``, built from :class:`HubertCtcFixedConfig`."""
