"""d2v_fairseq: data2vec for speech, text and images as a fairseq user-dir, and the `d2v` command.

    pip install .                      # the package, the `d2v` command and its pinned dependencies
    pip install --no-deps ve-fairseq==0.12.3
    pip install '.[hf]'                # + export to Hugging Face transformers
    pip install '.[dev]'               # + the test suite's needs

fairseq is installed apart, with --no-deps: its metadata asks for torchaudio, which would
replace a CPU torch with a multi-GB CUDA build. `d2v` says so when it is missing.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(name: str):
    """The pinned requirement lines of ``name`` (comments and blanks left out)."""
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


setup(
    name="d2v_fairseq",
    version="0.2.0",
    description="data2vec (Baevski et al., 2022) as a fairseq extension package",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["d2v_fairseq", "d2v_fairseq.*"]),
    # the example hydra configs ship inside the package: `d2v configs` prints where
    package_data={"d2v_fairseq": ["configs/*/*.yaml", "configs/*/*/*.yaml"]},
    install_requires=requirements("requirements.txt"),
    extras_require={
        "hf": ["transformers==5.24.0"],  # d2v export
        # make test; pytest-xdist runs the test files on every core (-n auto --dist loadfile): most
        # end-to-end tests are single-threaded subprocesses, so 2 cores halve the suite's time
        "dev": ["pytest==9.2.0", "pytest-xdist==3.8.0", "execnet==2.1.2", "ruff==0.17.5"],
    },
    entry_points={"console_scripts": ["d2v = d2v_fairseq.cli:console_main"]},
)
