"""Where the package's installed files are, and whether fairseq (installed apart) is there.

Imports nothing of fairseq or torch, so that the ``d2v`` command can say what is missing.
"""

import importlib.util
import os

# fairseq's metadata asks for torchaudio, which would replace a CPU torch with a CUDA build
FAIRSEQ_INSTALL = "pip install --no-deps ve-fairseq==0.12.3"


def fairseq_available() -> bool:
    """Whether fairseq can be imported."""
    return importlib.util.find_spec("fairseq") is not None


def package_dir() -> str:
    """The installed package's folder: fairseq's ``common.user_dir`` / ``--user-dir``."""
    return os.path.dirname(os.path.abspath(__file__))


def config_root() -> str:
    """The installed root of the example hydra configs: ``{audio,text,vision}/{pretraining,...}``."""
    return os.path.join(package_dir(), "configs")
