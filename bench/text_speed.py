"""Text pre-training speed: this package's data2vec_text against the data2vec_text model that
ships inside the installed fairseq (examples/data2vec), same config and data, in one run.

    .venv/bin/python bench/text_speed.py [--updates 60] [--data DIR]

Both train with fairseq-hydra-train from examples/text/pretraining/tiny_cpu.yaml on binarized
WordNet glosses (built if missing: 20k glosses, 4k BPE pieces), validation off, same seed, one
process each. The reference runs with fairseq's ``model`` criterion through a temporary
user-dir that loads its text model the way tests/helpers/reference_text_checkpoint.py does
(its source does not import on Python 3.11 as it is). Prints updates/s, tokens/s and peak RSS
of each and the ratios (ours / reference).
"""

import argparse
import os
import tempfile

from _measure import print_table, train_once, with_overrides, wordnet_text_data  # bench/ is the script's directory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "examples", "text", "pretraining")
REFERENCE_USER_DIR_INIT = f"""import sys
sys.path.insert(0, {os.path.join(REPO, 'tests', 'helpers')!r})
from reference_text_checkpoint import import_reference
import_reference()  # registers the reference's data2vec_text
"""


def build_data(data: str) -> None:
    wordnet_text_data(data, vocab_size=4000)


def run(kind: str, data: str, updates: int, workdir: str, sizes=()) -> dict:
    """One run of ``kind`` (ours or reference); ``sizes`` overrides replace the defaults."""
    common = [f"task.data={data}", f"checkpoint.save_dir={workdir}/{kind}_ckpt", f"optimization.max_update={updates}",
              "dataset.disable_validation=true", "checkpoint.no_save=true", "common.log_interval=5",
              "+lr_scheduler.lr_period_updates=10000"]
    common = with_overrides(common, list(sizes))
    if kind == "ours":
        extra = [f"common.user_dir={REPO}/d2v_fairseq"]
    else:
        user_dir = os.path.join(workdir, "d2v_reference_text")
        os.makedirs(user_dir, exist_ok=True)
        with open(os.path.join(user_dir, "__init__.py"), "w") as f:
            f.write(REFERENCE_USER_DIR_INIT)
        extra = [f"common.user_dir={user_dir}", "criterion._name=model", "~criterion.var_check_after_updates",
                 "+model.transformer.decoder.input_dim=512", "+model.transformer.decoder.output_dim=512"]
    result = train_once(kind, ["--config-dir", CONFIG_DIR, "--config-name", "tiny_cpu", *common, *extra],
                        workdir, updates)
    # the complete_doc blocks of the glosses are (nearly) full
    tokens = next((int(o.split("=")[1]) for o in sizes if o.startswith("task.tokens_per_sample=")), 128)
    result["tokens_per_s"] = result["bsz"] * tokens * updates / result["train_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--data", default=os.path.join(REPO, "work", "bench-text"))
    args = parser.parse_args()
    build_data(args.data)
    with tempfile.TemporaryDirectory() as workdir:
        results = {kind: run(kind, args.data, args.updates, workdir) for kind in ("reference", "ours")}
    print_table(f"text pre-training speed, tiny_cpu.yaml, {args.updates} updates, {os.cpu_count()} CPU threads",
                results, "tokens_per_s")


if __name__ == "__main__":
    main()
