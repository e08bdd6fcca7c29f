"""``d2v train``: fairseq-hydra-train, plus what a recipe written for a cluster needs elsewhere.

* **Multi-process training on CPU-only machines.** Under torchrun, fairseq's launcher sets
  ``device_id = rank % torch.cuda.device_count()``, which divides by zero without a GPU, and
  spawns ``torch.cuda.device_count()`` processes itself; under SLURM with one task per node its
  own initialization sets the world size to nodes x GPUs, i.e. 0. When torchrun's (or SLURM's)
  variables are set and no GPU is visible, we hand fairseq the rank, world size and init method
  as config overrides, so its launcher skips that inference, and select the gloo backend. With
  GPUs under SLURM, fairseq's own SLURM initialization runs (``distributed_port`` set).
* **A recipe on the devices at hand.** A recipe naming more processes than there are keeps its
  effective batch by gradient accumulation: ``update_freq`` = recipe world size x its
  ``update_freq`` / processes here (rounded up), said in one line before training
  (``exact_world_size`` keeps fairseq's behaviour: it stops).
* **Precision.** ``common.fp16`` without CUDA is one line naming the alternatives.
* **A schedule that fits.** A ``max_update`` so small that a phase of the recipe's learning-rate
  schedule would have 0 updates (tri_stage's decay, cosine's period: fairseq divides by them)
  gets phases fitted to it, said in one line.
* **Checkpoints and faults** (:mod:`.checkpoints`, :mod:`.training_rules`): whole checkpoints
  (atomic writes, extra names as links, no asynchronous in-place writes), resume past an
  unreadable or missing ``checkpoint_last.pt``, a finished run stays finished, one run per
  save_dir, a bad config value, a full disk or a NaN loss as one line; in every process of the
  run, fairseq's spawned workers included.

Otherwise the command is exactly fairseq-hydra-train.
"""

import math
import os
import subprocess
import sys
from typing import Dict, List, Mapping, Optional, Tuple

from .modules.errors import InputError

PACKAGE = os.path.dirname(os.path.abspath(__file__))

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
SLURM_VARS = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_NODELIST")
DEFAULT_PORT = 29671  # the rendezvous port of a SLURM job's rank 0 (distributed_training.distributed_port)


class TrainConfigError(InputError):
    """A recipe that cannot run as asked on this machine."""


def cpu_torchrun_overrides(env: Mapping[str, str] = os.environ) -> List[str]:
    """Hydra overrides that let fairseq train under torchrun without GPUs; [] otherwise."""
    import torch

    if not all(k in env for k in TORCHRUN_VARS) or torch.cuda.is_available():
        return []
    return _cpu_process_group("env://", int(env["WORLD_SIZE"]), int(env["RANK"]))


# On resume, fairseq's rank 0 reads checkpoint_last.pt and sends it to the other ranks as a
# pickle, which they read with torch.load's default weights_only=True (torch >= 2.6): the
# config inside is an omegaconf DictConfig by then, and every other rank stops. Each rank reads
# the file itself instead (it is on storage they all see).
LOAD_ON_EVERY_RANK = "checkpoint.load_checkpoint_on_all_dp_ranks=true"


def _cpu_process_group(init_method: str, world_size: int, rank: int) -> List[str]:
    return [
        LOAD_ON_EVERY_RANK,
        f"distributed_training.distributed_init_method={init_method}",
        f"distributed_training.distributed_world_size={world_size}",
        f"distributed_training.distributed_rank={rank}",
        "distributed_training.distributed_no_spawn=true",
        "distributed_training.distributed_backend=gloo",
        "distributed_training.device_id=0",
        "common.cpu=true",
    ]


def slurm_overrides(env: Mapping[str, str] = os.environ, port: int = DEFAULT_PORT) -> List[str]:
    """Inside a SLURM job step: the rendezvous port for fairseq's own SLURM initialization (GPUs,
    NCCL) or, without GPUs, the process group spelled out (gloo, rank 0's node as the host)."""
    import torch

    if not all(k in env for k in SLURM_VARS) or all(k in env for k in TORCHRUN_VARS):
        return []
    if torch.cuda.is_available():
        return [f"distributed_training.distributed_port={port}", LOAD_ON_EVERY_RANK]
    host = first_slurm_host(env["SLURM_JOB_NODELIST"])
    return _cpu_process_group(f"tcp://{host}:{port}", int(env["SLURM_NTASKS"]), int(env["SLURM_PROCID"]))


def first_slurm_host(nodelist: str) -> str:
    """The first host name of a SLURM node list (``n[1-2]`` -> ``n1``), as fairseq reads it."""
    out = subprocess.check_output(["scontrol", "show", "hostnames", nodelist], text=True)
    return out.split()[0]


# ------------------------------------------------------------------ reading the recipe


def hydra_config_path(argv: List[str]) -> Optional[str]:
    """The YAML named by ``--config-dir``/``--config-name`` (``-cd``/``-cn``, ``=`` forms too) in ``argv``."""
    found: Dict[str, str] = {}
    names = {"--config-dir": "dir", "-cd": "dir", "--config-name": "name", "-cn": "name",
             "--config-path": "dir", "-cp": "dir"}
    for i, arg in enumerate(argv):
        key, eq, value = arg.partition("=")
        if key in names:
            found[names[key]] = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
    if "name" not in found:
        return None
    name = found["name"] if found["name"].endswith(".yaml") else found["name"] + ".yaml"
    return os.path.join(found.get("dir", "."), name)


def load_config(path: str, overrides=()) -> dict:
    """The one recipe loader: the YAML at ``path`` with hydra-style ``key=value`` overrides
    applied (``+``/``++`` prefixes read as plain sets, ``hydra.*`` and ``--options`` skipped), as
    a plain dict with interpolations left as they are. Used by ``d2v train``, ``d2v ablate`` (its
    run keys) and the own-corpus demo (its plan)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    dotlist = [o.lstrip("+") for o in overrides if "=" in o and not o.startswith(("-", "hydra.", "~"))]
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    return OmegaConf.to_container(cfg, resolve=False)


def resolved_recipe(argv: List[str]) -> dict:
    """The config file named in ``argv`` with its ``key=value`` overrides applied (see
    :func:`load_config`); {} when no config file is named."""
    path = hydra_config_path(argv)
    if path is None or not os.path.isfile(path):
        return {}
    try:
        return load_config(path, argv)
    except Exception:  # hydra itself reports a malformed override, with its own message
        return load_config(path)


def config_file_sections(argv: List[str]) -> dict:
    """The config file named in ``argv`` as it is written (no overrides); {} when none."""
    path = hydra_config_path(argv)
    return load_config(path) if path is not None and os.path.isfile(path) else {}


def config_get(cfg: dict, dotted: str, default=None):
    """``cfg["a"]["b"]`` of a plain config dict for ``"a.b"``; ``default`` when absent."""
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return default
        cfg = cfg[part]
    return cfg


def check_precision(cfg: dict, cuda: Optional[bool] = None) -> None:
    """``common.fp16`` needs CUDA (fairseq's FP16 optimizer asks it for the device): one line
    naming the alternatives instead of its traceback."""
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    fp16 = str(config_get(cfg, "common.fp16", False)).lower() == "true"
    if fp16 and not cuda:
        raise TrainConfigError("common.fp16=true needs a CUDA GPU (fairseq's FP16 optimizer runs on one); here use "
                               "common.fp16=false common.bf16=true (bfloat16 on CPU), or "
                               "common.memory_efficient_fp16=true, or train on a GPU", path="common.fp16")


def check_checkpoint_writes(cfg: dict) -> None:
    """``checkpoint.write_checkpoints_asynchronously`` writes in place: refused in one line (the
    training processes refuse it too, see :mod:`.training_rules`)."""
    from .training_rules import ASYNC_WRITES

    if str(config_get(cfg, "checkpoint.write_checkpoints_asynchronously", False)).lower() == "true":
        raise TrainConfigError(ASYNC_WRITES, path="checkpoint.write_checkpoints_asynchronously")


def processes_here(env: Mapping[str, str] = os.environ) -> int:
    """Training processes this launch has: torchrun's or SLURM's world, else one per GPU, else 1."""
    import torch

    if all(k in env for k in TORCHRUN_VARS):
        return int(env["WORLD_SIZE"])
    if all(k in env for k in SLURM_VARS):
        return int(env["SLURM_NTASKS"])
    return max(1, torch.cuda.device_count())


def _batch_words(cfg: dict) -> str:
    tokens, sentences = config_get(cfg, "dataset.max_tokens"), config_get(cfg, "dataset.batch_size")
    if tokens:
        tokens = int(tokens)
        return f"{tokens / 1e6:.1f}M samples/tokens" if tokens >= 1e6 else f"{tokens} samples/tokens"
    return f"{sentences} items" if sentences else "its batch"


def fit_world_size(cfg: dict, available: int) -> Tuple[List[str], Optional[str]]:
    """Overrides (world size, ``update_freq``) that keep a recipe's effective batch on
    ``available`` processes, and the line that says so; ([], None) when the recipe fits."""
    world = int(config_get(cfg, "distributed_training.distributed_world_size", 1) or 1)
    if world <= available:
        return [], None
    freq = config_get(cfg, "optimization.update_freq", [1]) or [1]
    freq = [int(f) for f in (freq if isinstance(freq, list) else [freq])]
    new = [math.ceil(world * f / available) for f in freq]
    batch = _batch_words(cfg)
    recipe = f"recipe: {world} processes x {batch} x update_freq {','.join(map(str, freq))}"
    here = f"here: {available} process{'es' if available > 1 else ''} -> update_freq {','.join(map(str, new))}"
    ratio = available * new[0] / (world * freq[0])
    same = "same effective batch" if ratio == 1 else f"effective batch {ratio:.3g}x the recipe's"
    line = f"{recipe}; {here} ({same}; learning rate and schedule as the recipe's)"
    overrides = [f"distributed_training.distributed_world_size={available}",
                 f"optimization.update_freq=[{','.join(map(str, new))}]"]
    return overrides, line


def addable_overrides(argv: List[str], cfg: dict) -> List[str]:
    """``argv`` with a ``+`` before each ``GROUP.KEY=VALUE`` whose GROUP is a registry choice of the
    recipe (a section with ``_name``: task, model, criterion, ...) that does not spell KEY out:
    hydra refuses to set a key its YAML lacks, while fairseq's dataclass for that choice declares
    it (and rejects a misspelled one itself)."""
    out = []
    for arg in argv:
        key, eq, _ = arg.partition("=")
        group, dot, rest = key.partition(".")
        section = cfg.get(group) if isinstance(cfg, dict) else None
        if (eq and dot and not arg.startswith(("+", "~", "-")) and "." not in rest
                and isinstance(section, dict) and "_name" in section and rest not in section):
            arg = "+" + arg
        out.append(arg)
    return out


def fit_schedule(cfg: dict) -> Tuple[List[str], Optional[str]]:
    """Overrides that give every phase of the recipe's learning-rate schedule at least one update
    at its ``optimization.max_update`` (fairseq divides by a phase's length: tri_stage's decay,
    cosine's period), and the line that says so; ([], None) when the schedule fits."""
    sched = cfg.get("lr_scheduler") or {}
    max_update = int(config_get(cfg, "optimization.max_update", 0) or 0)
    if max_update <= 0 or not isinstance(sched, dict):
        return [], None

    def key(name: str) -> str:  # hydra refuses to set a key the YAML lacks without "+"
        return f"lr_scheduler.{name}" if name in sched else f"+lr_scheduler.{name}"

    if sched.get("_name") == "tri_stage" and isinstance(sched.get("phase_ratio"), list):
        ratio = [float(r) for r in sched["phase_ratio"]]
        steps = [int(max_update * r) for r in ratio]
        if steps[2] > 0:
            return [], None
        warmup = min(steps[0], max_update - 1)
        hold = max(0, min(steps[1], max_update - 1 - warmup))
        decay = max_update - warmup - hold
        line = (f"lr_scheduler.phase_ratio={ratio} at optimization.max_update={max_update} gives a decay phase of "
                f"0 updates (fairseq's tri_stage divides by it): using warmup_steps={warmup} hold_steps={hold} "
                f"decay_steps={decay}")
        return ["lr_scheduler.phase_ratio=null", f"{key('warmup_steps')}={warmup}", f"{key('hold_steps')}={hold}",
                f"{key('decay_steps')}={decay}"], line
    if sched.get("_name") == "cosine":
        warmup = int(sched.get("warmup_updates") or 0)
        period = sched.get("lr_period_updates", -1)
        if (period is None or float(period) <= 0) and max_update - warmup <= 0:
            fitted = max_update // 2
            line = (f"lr_scheduler.warmup_updates={warmup} at optimization.max_update={max_update} leaves the cosine "
                    f"schedule no update to decay over (fairseq divides by it): using warmup_updates={fitted}")
            return [f"{key('warmup_updates')}={fitted}"], line
    return [], None


def override_key(override: str) -> str:
    """The config key a hydra override sets (``+key=value`` and ``key=value`` alike)."""
    return override.split("=", 1)[0].lstrip("+")


def with_overrides(overrides: List[str], extra: List[str]) -> List[str]:
    """Hydra ``overrides`` with the keys of ``extra`` replaced by its values, ``extra`` last
    (``+key``, ``~key`` and ``key`` are one key)."""
    given = {override_key(o.lstrip("~")) for o in extra}
    return [o for o in overrides if override_key(o.lstrip("~")) not in given] + list(extra)


def _fitted(argv: List[str], extra: List[str], fitted: List[str], line: Optional[str]) -> Tuple[List[str], List[str]]:
    """(argv, extra) with the ``fitted`` overrides replacing any of the same key; ``line`` said
    once, by rank 0."""
    if line and int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0"))) == 0:
        print(line, flush=True)
    replaced = {override_key(o) for o in fitted}
    return ([a for a in argv if override_key(a) not in replaced],
            [e for e in extra if override_key(e) not in replaced] + fitted)


def hydra_train(argv: Optional[List[str]] = None, exact_world_size: bool = False) -> None:
    """``d2v train ARGS``: fairseq-hydra-train with ``argv`` (default: ``sys.argv[1:]``), the
    package as ``common.user_dir`` unless given, the torchrun/SLURM overrides above, the
    precision check, and the recipe's world size fitted to this machine (unless
    ``exact_world_size``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = resolved_recipe(argv)
    argv = addable_overrides(argv, config_file_sections(argv))
    check_precision(cfg)
    check_checkpoint_writes(cfg)
    extra = [f"common.user_dir={PACKAGE}"] + cpu_torchrun_overrides() + slurm_overrides()
    if not exact_world_size and cfg:
        # update_freq was already multiplied in: the fitted values replace the user's own
        argv, extra = _fitted(argv, extra, *fit_world_size(cfg, processes_here()))
    argv, extra = _fitted(argv, extra, *fit_schedule(cfg))
    given = {override_key(arg) for arg in argv if "=" in arg}
    sys.argv = ["fairseq-hydra-train"] + argv + [o for o in extra if o.split("=", 1)[0] not in given]
    from fairseq_cli.hydra_train import cli_main

    from .training_rules import install_for_run

    install_for_run()  # here and in every worker fairseq spawns: whole checkpoints, one-line errors, ...
    cli_main()
