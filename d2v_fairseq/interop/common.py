"""What the exporters share: the optional transformers import, the refusal error, vocabularies."""

from typing import Dict

from ..modules.errors import InputError


class NotExportable(InputError):
    """The model has a feature transformers' class cannot represent exactly."""


def import_transformers():
    """transformers (an optional extra), or an ImportError that says how to install it."""
    try:
        import transformers
    except ImportError as e:  # optional dependency
        raise ImportError("export needs transformers: pip install 'd2v_fairseq[hf]' (transformers==5.24.0)") from e
    return transformers


def dictionary_vocabulary(dictionary) -> Dict[str, int]:
    """A fairseq dictionary as a tokenizer vocabulary, indices unchanged (for CTC: blank = <s> = 0)."""
    return {symbol: index for index, symbol in enumerate(dictionary.symbols)}
