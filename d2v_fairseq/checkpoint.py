"""Loading data2vec checkpoints (ours and fairseq's released ones) from Python.

Released checkpoints carry config keys that no current dataclass declares (legacy wav2vec 2.0
fields, debug options). fairseq drops such keys silently when it builds the model; here each
dropped key is named in a warning first, so that a setting that mattered is not lost unseen.
"""

import logging
import warnings
from dataclasses import fields
from typing import Dict, List, Optional, Tuple

from fairseq import checkpoint_utils
from fairseq.models import MODEL_DATACLASS_REGISTRY
from omegaconf import open_dict

logger = logging.getLogger(__name__)


def undeclared_model_keys(model_cfg) -> List[str]:
    """Keys of a checkpoint's model config that its registered dataclass does not declare."""
    name = model_cfg.get("_name", None)
    if name not in MODEL_DATACLASS_REGISTRY:
        return []
    declared = {f.name for f in fields(MODEL_DATACLASS_REGISTRY[name])} | {"_name"}
    return sorted(k for k in model_cfg.keys() if k not in declared)


def load_pretrained(path: str, arg_overrides: Optional[Dict] = None) -> Tuple[object, object, object]:
    """(model, cfg, task) from a checkpoint, warning about the config keys it drops."""
    import d2v_fairseq  # noqa: F401  (registers our models before fairseq resolves names)

    state = checkpoint_utils.load_checkpoint_to_cpu(path, arg_overrides)
    dropped = undeclared_model_keys(state["cfg"].model)
    if dropped:
        message = f"{path}: model config keys not declared by {state['cfg'].model._name} are ignored: {', '.join(dropped)}"
        warnings.warn(message)
        logger.warning(message)
        with open_dict(state["cfg"].model):
            for key in dropped:
                del state["cfg"].model[key]
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides, state=state)
    return models[0], cfg, task
