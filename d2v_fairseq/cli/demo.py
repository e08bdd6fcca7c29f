"""``d2v demo {speech,text,vision,audio-events}``: the demo pipelines, pre-trained vs random init."""

import argparse


def register(sub) -> None:
    """Adds ``demo`` and its pipelines to the ``d2v`` subparsers ``sub``."""
    demo = sub.add_parser("demo", help="run a demo: pre-train, fine-tune, score pre-trained vs random init",
                          description="Each demo reuses what an earlier run left in --work.")
    kinds = demo.add_subparsers(dest="demo", metavar="DEMO", required=True)

    p = kinds.add_parser("speech", help="synthesized speech (espeak-ng): pre-train, CTC fine-tune, decode; WER table")
    _common(p, "work/demo", 1500, 1200)
    p.set_defaults(func=_speech)

    p = kinds.add_parser("text", help="WordNet glosses: pre-train data2vec_text, classify definitions")
    _common(p, "work/demo-text", 800, 400)
    p.add_argument("--train-per-class", type=int, default=40, help="labeled definitions per category")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per starting point (the table gives the mean)")
    p.add_argument("--vocab-size", type=int, default=4000, help="BPE vocabulary size")
    p.add_argument("--pretrain-overrides", nargs="*", default=[], help="extra hydra overrides for pre-training")
    p.set_defaults(func=_text)

    p = kinds.add_parser("vision", help="scikit-learn's handwritten digits: pre-train data2vec_vision, classify")
    _common(p, "work/demo-vision", 600, 300)
    p.set_defaults(func=_vision)

    p = kinds.add_parser("audio-events", help="mixtures of real recorded sounds: pre-train, fine-tune a tagger; mAP")
    _common(p, "work/demo-audio-events", 600, 300)
    p.add_argument("--labeled", type=int, default=200, help="labeled clips for fine-tuning")
    p.add_argument("--seeds", type=int, default=1, help="fine-tuning seeds per starting point (the table gives the mean)")
    p.add_argument("--pretraining", default="tiny_cpu",
                   help="audio/pretraining config: tiny_cpu (data2vec) or v2_tiny_cpu (data2vec 2.0)")
    p.add_argument("--pretrain-overrides", nargs="*", default=[], help="extra hydra overrides for pre-training")
    p.add_argument("--finetune-overrides", nargs="*", default=[], help="extra hydra overrides for fine-tuning")
    p.set_defaults(func=_audio_events)


def _common(p: argparse.ArgumentParser, work: str, pretrain_updates: int, finetune_updates: int) -> None:
    p.add_argument("--work", default=work, help="where the data, checkpoints and results go")
    p.add_argument("--pretrain-updates", type=int, default=pretrain_updates, help="pre-training updates")
    p.add_argument("--finetune-updates", type=int, default=finetune_updates, help="fine-tuning updates per run")


def _speech(args: argparse.Namespace) -> None:
    from ..demos.speech import run_demo

    run_demo(args.work, args.pretrain_updates, args.finetune_updates)


def _text(args: argparse.Namespace) -> None:
    from ..demos.text import run_demo

    run_demo(args.work, args.pretrain_updates, args.finetune_updates, args.train_per_class, args.seeds,
             args.vocab_size, args.pretrain_overrides)


def _vision(args: argparse.Namespace) -> None:
    from ..demos.vision import run_demo

    run_demo(args.work, args.pretrain_updates, args.finetune_updates)


def _audio_events(args: argparse.Namespace) -> None:
    from ..demos.audio_events import run_demo

    run_demo(args.work, args.pretrain_updates, args.finetune_updates, args.labeled, args.seeds, args.pretraining,
             args.pretrain_overrides, args.finetune_overrides)
