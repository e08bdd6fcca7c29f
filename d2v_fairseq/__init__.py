"""d2v_fairseq: data2vec (Baevski et al., 2022) as a fairseq user-dir.

Importing the package registers its models, tasks and criterions with fairseq (fairseq
auto-imports only the ``models/`` and ``tasks/`` of a user-dir, never ``criterions/``).
"""

from . import criterions, models, tasks  # noqa: F401

__version__ = "0.1.0"
