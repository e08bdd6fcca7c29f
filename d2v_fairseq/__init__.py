"""d2v_fairseq: data2vec (Baevski et al., 2022) as a fairseq user-dir.

Importing the package registers its models, tasks and criterions with fairseq (fairseq
auto-imports only the ``models/`` and ``tasks/`` of a user-dir, never ``criterions/``).
"""

import types

import numpy as np
import torch
from fairseq.data.dictionary import Dictionary

from . import criterions, models, tasks  # noqa: F401

__version__ = "0.1.0"

# torch >= 2.6 loads checkpoints with weights_only=True, and fairseq's loader does not say
# otherwise; fine-tuned checkpoints pickle the target Dictionary in their task state.
# Allow that one fairseq class, so fairseq-generate and fine-tuning can read them.
torch.serialization.add_safe_globals([Dictionary])

# fairseq 0.12's TokenBlockDataset reads np.compat.long for sample_break_mode=eos (masked_lm's
# one-sentence-per-sample mode); NumPy 2 removed np.compat. Give fairseq back that one name.
if not hasattr(np, "compat"):
    np.compat = types.SimpleNamespace(long=np.int64)
