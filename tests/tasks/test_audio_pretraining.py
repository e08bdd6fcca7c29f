import shutil

import numpy as np
import pytest
import torch

from d2v_fairseq.data.manifest import ManifestError
from d2v_fairseq.tasks.audio_pretraining import CheckedAudioPretrainingConfig, CheckedAudioPretrainingTask

from ..conftest import setup_task


def _task(data, **overrides):
    return setup_task(CheckedAudioPretrainingTask, CheckedAudioPretrainingConfig, data=str(data), **overrides)


def test_bad_manifest_line_stops_loading_with_file_and_line(demo_corpus, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_corpus, data, ignore=shutil.ignore_patterns("wav"))
    lines = (data / "train.tsv").read_text().splitlines()
    lines[4] = "missing_0003.wav\t12345"
    (data / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=rf"^{data}/train.tsv:5: audio file not found: .*missing_0003.wav"):
        _task(data).load_dataset("train")


def test_crops_repeat_for_the_same_batch_and_epoch(demo_corpus):
    task = _task(demo_corpus, max_sample_size=4000)
    task.load_dataset("train")
    dataset = task.datasets["train"]
    samples = [dataset[i] for i in range(4)]
    np.random.seed(0)
    a = dataset.collater(samples)["net_input"]["source"]
    np.random.seed(1)  # the global RNG no longer matters
    b = dataset.collater(samples)["net_input"]["source"]
    assert a.shape == (4, 4000) and torch.equal(a, b)
    dataset.set_epoch(2)
    assert not torch.equal(a, dataset.collater(samples)["net_input"]["source"])
