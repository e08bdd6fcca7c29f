"""Training curves out of the box: a run with ``common.tensorboard_logdir`` writes TensorBoard
event files (tensorboardX is a dependency) holding the data2vec criterion's scalars."""

import glob
import os
import struct

import pytest

from .conftest import REPO, VENV_BIN, run_cli

pytestmark = pytest.mark.slow  # a training run

PRETRAIN = os.path.join(REPO, "d2v_fairseq", "configs", "audio", "pretraining")


def scalar_tags(event_file):
    """The scalar tags of a TensorBoard event file (TFRecord frames of Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    tags = set()
    with open(event_file, "rb") as f:
        while True:
            header = f.read(12)  # length (8 bytes) + its CRC (4)
            if len(header) < 12:
                break
            (length,) = struct.unpack("<Q", header[:8])
            event = Event.FromString(f.read(length))
            f.read(4)  # the data's CRC
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_tensorboard_logdir_gets_the_regression_scalars(demo_corpus, tmp_path):
    proc = run_cli([os.path.join(VENV_BIN, "d2v"), "train", "--config-dir", PRETRAIN, "--config-name", "tiny_cpu",
                    f"task.data={demo_corpus}", f"checkpoint.save_dir={tmp_path}/ckpt", f"hydra.run.dir={tmp_path}/h",
                    f"common.tensorboard_logdir={tmp_path}/tb", "optimization.max_update=16", "common.log_interval=2"])
    assert "Please install tensorboardX" not in proc.stdout + proc.stderr
    files = glob.glob(str(tmp_path / "tb" / "train_inner" / "events.out.tfevents.*"))
    assert files, os.listdir(tmp_path / "tb")
    tags = set().union(*(scalar_tags(f) for f in files))
    assert {"loss", "target_var", "pred_var", "ema_decay"} <= tags
