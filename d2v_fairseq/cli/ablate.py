"""``d2v ablate STUDY``: the paper's ablations (top-k, target, context), a table and a plot."""

import argparse
import logging


def register(sub) -> None:
    """Adds ``ablate`` to the ``d2v`` subparsers ``sub``."""
    p = sub.add_parser(
        "ablate", help="run one of the paper's ablations (top-k, target, context) or a pre-training budget "
        "curve (budget); table and plot",
        description="For every setting and pre-training seed: pre-train, fine-tune and score with the modality's "
        "study recipe (the demo's data and an 8-block model) or --recipe; then, when the recipe names "
        "finetune.random_init, the same fine-tuning from random init per seed. Runs are keyed by their resolved "
        "configs, data and seed: finished runs are reused, interrupted ones resume.")
    p.add_argument("study", choices=("top-k", "target", "context", "budget", "method"),
                   help="top-k: K top blocks averaged; target: ffn, ffn-residual, attn, block; "
                   "context: teacher attention window (steps, fraction of the input, or full); "
                   "budget: pre-training updates, plotted against the pre-training seconds; "
                   "method: data2vec, data2vec2, wav2vec2, hubert, each pre-trained for the same seconds")
    p.add_argument("--modality", choices=("speech", "text", "vision"),
                   help="the modality (its default recipe); optional with --recipe")
    p.add_argument("--values", help="comma-separated settings, e.g. 1,2,4,8 or ffn,block or 2,8,32,full "
                   "(default: every K up to the depth; every target point; the recipe's context values)")
    p.add_argument("--seeds", type=int, default=3, help="pre-training seeds per setting (fine-tuning uses the same seed)")
    p.add_argument("--work", help="where data, runs, results.json and the plot go (default work/ablations/MODALITY)")
    p.add_argument("--recipe", help="a study recipe YAML (see `d2v configs ablations`): pre-training and "
                   "fine-tuning configs, update counts, data, metric")
    p.add_argument("--plot", help="the PNG to write (default WORK/STUDY.png)")
    p.add_argument("--seconds", type=float, help="method: each method's pre-training time in seconds of training "
                   "(default: the recipe's pretrain.seconds)")
    p.add_argument("--scores-from", metavar="RESULTS_JSON",
                   help="take the score of every run this earlier results.json lists under the same run directory "
                   "(same resolved pre-training config, seed and data) instead of training it again")
    p.add_argument("--replot", metavar="RESULTS_JSON", action="append",
                   help="train nothing: redraw the study's plot from a results.json (needs --plot); give it again "
                   "to draw several recipes' budget curves in one plot")
    p.set_defaults(func=_ablate, log_level=logging.WARNING)


def _ablate(args: argparse.Namespace) -> None:
    from ..demos.ablation import StudyError, replot, run_study

    if args.replot:
        if not args.plot:
            raise StudyError("--replot needs --plot (the PNG to write)")
        print(replot(args.replot, args.study, args.plot))
        return
    if args.modality is None and args.recipe is None:
        raise StudyError("give --modality (speech, text, vision) or --recipe")
    run_study(args.study, args.modality, args.values, args.seeds, args.work, args.recipe, args.plot,
              scores_from=args.scores_from, seconds=args.seconds)
