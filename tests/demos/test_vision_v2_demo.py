"""``d2v demo vision --method data2vec2`` end to end at a few updates: v1 and 2.0 pre-train
(each timed), each is fine-tuned, random init too, and the one table names all three."""

import os
import re

import pytest

from ..conftest import VENV_BIN, run_cli

pytestmark = pytest.mark.slow  # end to end: five short training runs


def test_the_v2_vision_demo_prints_one_table_of_three_rows(tmp_path):
    work = tmp_path / "demo"
    args = [os.path.join(VENV_BIN, "d2v"), "demo", "vision", "--method", "data2vec2", "--work", str(work),
            "--pretrain-updates", "4", "--v2-pretrain-updates", "3", "--finetune-updates", "4"]
    out = run_cli(args, timeout=1200).stdout
    table = out[out.index("fine-tuned from"):]
    header = table.splitlines()[0].split()
    assert header[-3:] == ["top-5", "pre-train", "s"]
    rows = {name: re.search(rf"^{re.escape(name)}\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)$", table, re.M)
            for name in ("data2vec 2.0", "data2vec (v1)", "random init")}
    assert all(rows.values()), table
    assert int(rows["random init"].group(3)) == 0 and int(rows["data2vec 2.0"].group(3)) > 0
    assert "less pre-training time" in out
    assert os.path.isfile(work / "pretrain_v2_3" / "pretrain_seconds.txt")
    again = run_cli(args, timeout=600).stdout  # a second run reuses every stage
    assert "already trained (3 updates" in again and again.count("already trained") == 5
