"""d2v_fairseq: data2vec (Baevski et al., 2022) as a fairseq user-dir.

Importing the package registers its models, tasks and criterions with fairseq (fairseq
auto-imports only the ``models/`` and ``tasks/`` of a user-dir, never ``criterions/``).

fairseq itself is installed apart (``pip install --no-deps ve-fairseq==0.12.3``: its metadata
would pull a CUDA build of torch). Without it the package imports but registers nothing, and
the ``d2v`` command says what to install.
"""

import types

from .environment import config_root, fairseq_available  # noqa: F401

__version__ = "0.2.0"


if fairseq_available():
    import logging

    # importing fairseq's tasks logs "Please install tensorboardX" at INFO (and sets the root
    # logger to DEBUG); the speech-synthesis task that says it is not used here
    logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

    import numpy as np
    import torch
    from fairseq.data.dictionary import Dictionary

    from . import criterions, models, tasks  # noqa: F401

    # torch >= 2.6 loads checkpoints with weights_only=True, and fairseq's loader does not say
    # otherwise; fine-tuned checkpoints pickle the target Dictionary in their task state.
    # Allow that one fairseq class, so fairseq-generate and fine-tuning can read them.
    torch.serialization.add_safe_globals([Dictionary])

    # fairseq 0.12's TokenBlockDataset reads np.compat.long for sample_break_mode=eos (masked_lm's
    # one-sentence-per-sample mode); NumPy 2 removed np.compat. Give fairseq back that one name.
    if not hasattr(np, "compat"):
        np.compat = types.SimpleNamespace(long=np.int64)

    # a process of a run `d2v train` started (fairseq's spawned workers among them) keeps its rules
    from .training_rules import install_if_in_run

    install_if_in_run()
