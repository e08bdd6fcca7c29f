"""Shared fixtures: tiny configs, a seeded model, a small synthesized corpus."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from fairseq.dataclass.configs import FairseqConfig
from omegaconf import OmegaConf

import d2v_fairseq  # noqa: F401  (registers the package with fairseq)
from d2v_fairseq.models.data2vec_audio import Data2VecAudioConfig, Data2VecAudioModel

from .helpers.tiny import TINY_AUDIO

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)



def tiny_audio_cfg(**overrides):
    """A tiny data2vec_audio config inside a full fairseq config (for its interpolations)."""
    root = OmegaConf.structured(FairseqConfig)
    root.model = OmegaConf.merge(OmegaConf.structured(Data2VecAudioConfig), TINY_AUDIO, overrides)
    return root.model


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return Data2VecAudioModel(tiny_audio_cfg())


@pytest.fixture
def waveforms():
    """(source (2, 4000), padding_mask (2, 4000)): the second utterance is 3000 samples long."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(2, 4000, generator=g)
    padding_mask = torch.zeros(2, 4000, dtype=torch.bool)
    padding_mask[1, 3000:] = True
    return source, padding_mask


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """A small synthesized corpus (espeak-ng): 24 train, 8 valid, 8 test utterances."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required by the tests (apt-get install espeak-ng; `make test` does it)")
    from d2v_fairseq.demos.speech_corpus import build_corpus

    return build_corpus(str(tmp_path_factory.mktemp("corpus")), train=24, valid=8, test=8, seed=3)


def setup_task(task_class, config_class, **fields):
    """A task built as fairseq builds it, from its config inside a full fairseq config."""
    root = OmegaConf.structured(FairseqConfig)
    root.task = OmegaConf.merge(OmegaConf.structured(config_class), fields)
    return task_class.setup_task(root.task)


def run_cli(args, cwd=None, env=None, timeout=600):
    """Runs a console script of the venv; returns the completed process (output captured)."""
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def text_corpus(tmp_path_factory):
    """WordNet glosses (Debian's wordnet-base) binarized for masked_lm: 1500 train, 200 valid
    lines, a 400-piece BPE vocabulary."""
    from d2v_fairseq.data.text import prepare
    from d2v_fairseq.demos.wordnet import read_glosses

    root = tmp_path_factory.mktemp("text")
    glosses = [g for _, g, _ in read_glosses()]
    (root / "train.txt").write_text("\n".join(glosses[:1500:]) + "\n")
    (root / "valid.txt").write_text("\n".join(glosses[-200:]) + "\n")
    return prepare(str(root / "train.txt"), str(root / "valid.txt"), str(root / "bin"), vocab_size=400)


def masked_lm_task(data, **fields):
    """fairseq's masked_lm task on ``data``, as the text configs set it up."""
    from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

    fields = dict(dict(data=data, tokens_per_sample=64, include_target_tokens=True, sample_break_mode="complete_doc"),
                  **fields)
    return setup_task(MaskedLMTask, MaskedLMConfig, **fields)


def tiny_text_model(task, **overrides):
    """A tiny data2vec_text (3 blocks of 32) for ``task``'s dictionary."""
    from d2v_fairseq.models.data2vec_text import Data2VecTextConfig, Data2VecTextModel

    root = OmegaConf.structured(FairseqConfig)
    root.task = {"tokens_per_sample": 64}
    body = {"encoder": {"embed_dim": 32, "ffn_embed_dim": 64, "layers": 3, "attention_heads": 4},
            "max_source_positions": 64, "dropout": 0.0, "attention_dropout": 0.0}
    root.model = OmegaConf.merge(OmegaConf.structured(Data2VecTextConfig),
                                 dict(dict(average_top_k_layers=2, ema_anneal_end_step=10, transformer=body), **overrides))
    torch.manual_seed(0)
    return Data2VecTextModel.build_model(root.model, task)


def assert_same_student_and_teacher(checkpoint_a, checkpoint_b):
    """Two checkpoints hold bit-identical students and EMA teachers (``_ema``)."""
    a = torch.load(checkpoint_a, weights_only=False)["model"]
    b = torch.load(checkpoint_b, weights_only=False)["model"]
    assert a.keys() == b.keys() and a["_ema"].keys() == b["_ema"].keys()
    for key in a["_ema"]:
        assert torch.equal(a["_ema"][key], b["_ema"][key]), f"teacher {key}"
    for key in a:
        if key != "_ema":
            assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """Three classes of 32 x 32 images (a bright square in a class-specific corner) and manifests."""
    from .helpers.images import write_square_images

    root = tmp_path_factory.mktemp("images")
    write_square_images(str(root))
    return root / "manifests"


RTE_HEADER = "index\tsentence1\tsentence2\tlabel"


def write_rte(root, lines_by_split):
    os.makedirs(root / "RTE", exist_ok=True)
    for split, lines in lines_by_split.items():
        (root / "RTE" / f"{split}.tsv").write_text("\n".join([RTE_HEADER, *lines]) + "\n")


def rte_lines(n, offset=0):
    labels = ("entailment", "not_entailment")
    return [f"{i}\tthe cat {i} sat on the mat\ta cat sat\t{labels[(i + offset) % 2]}" for i in range(n)]


@pytest.fixture(scope="session")
def rte_bin(text_corpus, tmp_path_factory):
    """GLUE-format RTE (48 train, 16 dev sentence pairs) prepared with the text corpus's BPE and dictionary."""
    from d2v_fairseq.data.glue import prepare_task

    root = tmp_path_factory.mktemp("glue")
    write_rte(root, {"train": rte_lines(48), "dev": rte_lines(16, offset=1)})
    return prepare_task(str(root), str(root / "out"), "RTE", os.path.join(text_corpus, "sentencepiece.bpe.model"),
                        os.path.join(text_corpus, "dict.txt"))


@pytest.fixture(scope="session")
def finetuned(demo_corpus, tmp_path_factory):
    """A tiny CTC model of the demo corpus (15 pre-training, 20 fine-tuning updates), its LM and
    lexicon: the folder holding ft/checkpoint_best.pt, lm.arpa and lexicon.txt."""
    from d2v_fairseq.decoding.lm import KneserNeyLM, read_sentences, write_lexicon

    work = tmp_path_factory.mktemp("ft")
    run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/pretraining",
             "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={demo_corpus}",
             f"checkpoint.save_dir={work}/pre", "optimization.max_update=15", "dataset.disable_validation=true",
             "model.encoder_layers=2", "model.average_top_k_layers=2"], cwd=work)
    ft = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/finetuning",
             "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq/", f"task.data={demo_corpus}",
             f"model.w2v_path={work}/pre/checkpoint_last.pt", f"checkpoint.save_dir={work}/ft",
             "optimization.max_update=20", "dataset.validate_interval_updates=10", "checkpoint.save_interval_updates=10",
             "model.freeze_finetune_updates=5"],
            cwd=work)
    (work / "ft.log").write_text(ft.stdout + ft.stderr)
    sentences = read_sentences(os.path.join(demo_corpus, "lm.txt"))
    KneserNeyLM(sentences, order=3).write_arpa(str(work / "lm.arpa"))
    write_lexicon((w for s in sentences for w in s), str(work / "lexicon.txt"))
    return work
