"""``d2v train``: fairseq-hydra-train, plus multi-process training on CPU-only machines.

THE WORKAROUND, in this one place: under torchrun, fairseq's launcher sets
``device_id = rank % torch.cuda.device_count()``, which divides by zero without a GPU, and
spawns ``torch.cuda.device_count()`` processes itself. When torchrun's variables are set and
no GPU is visible, we hand fairseq the rank, world size and ``env://`` init method as config
overrides, so its launcher skips that inference, and select the gloo backend. With a GPU,
or without torchrun, the command is exactly fairseq-hydra-train.
"""

import os
import sys
from typing import List, Mapping, Optional

PACKAGE = os.path.dirname(os.path.abspath(__file__))

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def cpu_torchrun_overrides(env: Mapping[str, str] = os.environ) -> List[str]:
    """Hydra overrides that let fairseq train under torchrun without GPUs; [] otherwise."""
    import torch

    if not all(k in env for k in TORCHRUN_VARS) or torch.cuda.is_available():
        return []
    return [
        "distributed_training.distributed_init_method=env://",
        f"distributed_training.distributed_world_size={int(env['WORLD_SIZE'])}",
        f"distributed_training.distributed_rank={int(env['RANK'])}",
        "distributed_training.distributed_no_spawn=true",
        "distributed_training.distributed_backend=gloo",
        "distributed_training.device_id=0",
        "common.cpu=true",
    ]


def hydra_train(argv: Optional[List[str]] = None) -> None:
    """``d2v train ARGS``: fairseq-hydra-train with ``argv`` (default: ``sys.argv[1:]``), the
    package as ``common.user_dir`` unless given, and the torchrun overrides above."""
    argv = list(sys.argv[1:] if argv is None else argv)
    given = {arg.split("=", 1)[0].lstrip("+") for arg in argv if "=" in arg}
    extra = [f"common.user_dir={PACKAGE}"] + cpu_torchrun_overrides()
    sys.argv = ["fairseq-hydra-train"] + argv + [o for o in extra if o.split("=", 1)[0] not in given]
    from fairseq_cli.hydra_train import cli_main

    cli_main()
