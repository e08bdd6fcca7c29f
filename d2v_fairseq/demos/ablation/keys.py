"""Run keys: a run's directory is a hash of what determines it (resolved config, data, shape)."""

import hashlib
import json
import os
from typing import Dict, List

from .recipes import StudyError


def data_fingerprint(path: str) -> str:
    """A hash of every file under ``path`` (name, size, contents; files over 4 MiB by size and
    their first and last MiB), so that changed data never reuses a run."""
    digest = hashlib.sha256()
    paths = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    for file in paths:
        size = os.path.getsize(file)
        digest.update(f"{os.path.relpath(file, path)}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size <= 4 << 20:
                digest.update(f.read())
            else:
                digest.update(f.read(1 << 20))
                f.seek(-(1 << 20), os.SEEK_END)
                digest.update(f.read())
    return digest.hexdigest()


# study keys a recipe's config may leave out: set to the model's default, they are left out of the
# key too, so that (say) ``target ffn`` and ``top-k`` at the recipe's K share one run
DEFAULTED_KEYS = ("target_feature", "teacher_attention_window")


def model_default(model_name: str, field_name: str):
    """The default of a registered model's config field (None when unknown)."""
    from fairseq.models import MODEL_DATACLASS_REGISTRY

    from ... import models  # noqa: F401  (registers the package's models)

    config = MODEL_DATACLASS_REGISTRY.get(model_name)
    declared = getattr(config, "__dataclass_fields__", {}).get(field_name)
    return None if declared is None else declared.default


def run_key(resolved: dict, **inputs) -> str:
    """A short hash of a resolved config (its paths to the work dir left out, study keys at the
    model's default left out) and ``inputs``."""
    resolved = json.loads(json.dumps(resolved, default=str))
    model = resolved.get("model")
    if isinstance(model, dict) and "_name" in model:
        for key in DEFAULTED_KEYS:
            if key in model and str(model[key]) == str(model_default(model["_name"], key)):
                del model[key]
            elif key in model and key == "teacher_attention_window" and float(model[key]) == 0.0:
                del model[key]
    for section, key in (("common", "user_dir"), ("checkpoint", "save_dir"), ("checkpoint", "restore_file"),
                         ("task", "data"), ("model", "w2v_path"), ("model", "model_path")):
        if isinstance(resolved.get(section), dict):
            resolved[section].pop(key, None)
    blob = json.dumps({"config": resolved, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def model_shape(checkpoint: str) -> Dict[str, List[int]]:
    """The pre-trained model's shape: every parameter's name and size (the EMA teacher left out),
    read from ``checkpoint`` without loading its tensors."""
    from ...checkpoints import read_state

    state = read_state(checkpoint)
    if state is None:
        raise StudyError("cannot read the pre-trained checkpoint the random init takes its shape from", path=checkpoint)
    return {name: list(value.shape) for name, value in state["model"].items() if hasattr(value, "shape")}
