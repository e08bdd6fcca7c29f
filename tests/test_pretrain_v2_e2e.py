"""``data2vec2_audio`` (speech-only 2.0 layout) checkpoints after the merge into data2vec_multi, as a user meets
them: hub.load reads one (converted on load), and fairseq's wav2vec_ctc fine-tunes from it
through ``w2v_path``; the fine-tuned checkpoint loads and scores with `d2v evaluate`."""

import os
import re

import pytest
import torch

from .conftest import REPO, VENV_BIN, run_cli
from .helpers.data2vec2_audio_model import write_data2vec2_audio_checkpoint

pytestmark = pytest.mark.slow  # end to end: a fine-tuning run


def test_a_data2vec2_audio_checkpoint_loads_and_fine_tunes_with_ctc(demo_corpus, tmp_path):
    from d2v_fairseq.hub import load
    from d2v_fairseq.models.data2vec_multi import Data2VecMultiModel

    checkpoint = tmp_path / "data2vec2_audio.pt"
    old = write_data2vec2_audio_checkpoint(str(checkpoint), demo_corpus)
    reps = load(str(checkpoint))
    assert isinstance(reps.encoder, Data2VecMultiModel) and reps.modality == "speech"
    wave = torch.randn(1, 6000, generator=torch.Generator().manual_seed(0))
    states, _ = reps.hidden_states(wave)
    with torch.no_grad():
        before, _ = old.hidden_states(wave)
    assert len(states) == len(before) and max((a - b).abs().max().item() for a, b in zip(before, states, strict=False)) < 1e-4

    ft = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/finetuning",
                  "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={demo_corpus}",
                  f"model.w2v_path={checkpoint}", f"checkpoint.save_dir={tmp_path}/ft",
                  "optimization.max_update=6", "dataset.validate_interval_updates=6",
                  "checkpoint.save_interval_updates=6", "model.freeze_finetune_updates=3"], cwd=tmp_path)
    assert len(re.findall(r"valid on 'valid' subset .*\| wer ([\d.]+)", ft.stdout + ft.stderr)) == 1
    best = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    assert best["cfg"]["model"]["w2v_args"]["model"]["_name"] == "data2vec2_audio"
    weights = best["model"]
    assert "w2v_encoder.w2v_model.modality_encoders.AUDIO.alibi_scale" in weights  # saved in the merged layout
    assert not any(".decoder." in k for k in weights)
    out = run_cli([os.path.join(VENV_BIN, "d2v"), "evaluate", str(tmp_path / "ft" / "checkpoint_best.pt"),
                   demo_corpus]).stdout
    assert re.search(r"on test \(8 items\): wer [\d.]+  cer [\d.]+", out)
