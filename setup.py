"""d2v_fairseq: data2vec for speech, text and images as a fairseq user-dir."""

from setuptools import find_packages, setup

setup(
    name="d2v_fairseq",
    version="0.1.0",
    description="data2vec (Baevski et al., 2022) as a fairseq extension package",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["d2v_fairseq", "d2v_fairseq.*"]),
    # fairseq comes from ve-fairseq==0.12.3 installed with --no-deps (see Makefile);
    # the rest is pinned in requirements.txt.
    install_requires=[],
    # export to Hugging Face transformers (python -m d2v_fairseq.export): pip install .[hf]
    extras_require={"hf": ["transformers==5.24.0"]},
    entry_points={
        "console_scripts": [
            "d2v-hydra-train = d2v_fairseq.launch:hydra_train",
            "d2v-demo-corpus = d2v_fairseq.data.demo_corpus:main",
            "d2v-export = d2v_fairseq.export:main",
        ]
    },
)
