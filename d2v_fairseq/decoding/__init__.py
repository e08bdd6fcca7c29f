"""CTC decoders (viterbi, flashlight-text beam search with KenLM) and LM/lexicon building."""

from .ctc import (  # noqa: F401
    DecoderOptions,
    DecodingInputError,
    LexiconBeamDecoder,
    LexiconFreeBeamDecoder,
    ViterbiDecoder,
    collapse,
)
