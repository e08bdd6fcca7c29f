"""``d2v train ARGS`` (fairseq-hydra-train, also under torchrun without GPUs) and ``d2v configs``."""

import argparse
import os
from typing import List


def register(sub) -> None:
    """Adds ``train`` and ``configs`` to the ``d2v`` subparsers ``sub``."""
    p = sub.add_parser("train", help="fairseq-hydra-train with this package (also multi-process on CPUs)",
                       description="Everything after `train` goes to fairseq-hydra-train: --config-dir, "
                       "--config-name and key=value overrides; common.user_dir is set to this package unless "
                       "given. Under torchrun without GPUs it sets what fairseq's launcher needs.")
    p.add_argument("hydra_args", nargs=argparse.REMAINDER, help="fairseq-hydra-train's arguments")

    p = sub.add_parser("configs", help="print where the example configs are installed",
                       description="Prints the root of the installed hydra configs, e.g. for "
                       "fairseq-hydra-train --config-dir $(d2v configs)/audio/pretraining --config-name tiny_cpu")
    p.add_argument("group", nargs="?", help="a folder under the root, e.g. audio/pretraining (checked to exist)")
    p.add_argument("--user-dir", action="store_true",
                   help="print the package's folder instead: the value of fairseq's common.user_dir / --user-dir")
    p.set_defaults(func=_configs, needs_fairseq=False)


def run_train(argv: List[str]) -> None:
    """Runs fairseq-hydra-train on ``argv`` with the package as its user dir."""
    from ..launch import hydra_train

    hydra_train(argv)


def _configs(args: argparse.Namespace) -> None:
    from ..environment import config_root, package_dir
    from ..modules.errors import InputError

    if args.user_dir:
        print(package_dir())
        return
    path = config_root() if not args.group else os.path.join(config_root(), args.group)
    if not os.path.isdir(path):
        raise InputError("no such config folder; `d2v configs` lists the root", path=path)
    print(path)
