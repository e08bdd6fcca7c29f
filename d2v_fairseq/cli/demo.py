"""``d2v demo {speech,text,vision,audio-events}``: the demo pipelines, pre-trained vs random init."""

import argparse
import logging


def register(sub) -> None:
    """Adds ``demo`` and its pipelines to the ``d2v`` subparsers ``sub``."""
    demo = sub.add_parser("demo", help="run a demo: pre-train, fine-tune, score pre-trained vs random init",
                          description="Each demo reuses what an earlier run left in --work.")
    kinds = demo.add_subparsers(dest="demo", metavar="DEMO", required=True)

    p = kinds.add_parser("speech", help="speech: pre-train, CTC fine-tune, decode; WER (and CER) table",
                         description="Without --corpus: a corpus synthesized with espeak-ng. With --corpus: your own "
                         "corpus table (as `d2v prepare speech` reads it), its bad rows left out and counted.")
    p.add_argument("--work", default=None, help="where the data, checkpoints and results go "
                   "(default work/demo, or work/demo-own-speech with --corpus)")
    p.add_argument("--pretrain-updates", type=int, help="pre-training updates (default 1500; with --corpus: at "
                   "most this many, chosen from the corpus when not given)")
    p.add_argument("--finetune-updates", type=int, help="fine-tuning updates per run (default 1200; with --corpus: "
                   "at most this many, chosen from the corpus when not given)")
    p.add_argument("--patience", type=int, help="--corpus: stop fine-tuning when the valid UER has not improved for "
                   "this many validations (default 3; 0: run every update)")
    p.add_argument("--corpus", help="a corpus table (.tsv/.csv with path and text columns), a Kaldi dir or a folder")
    p.add_argument("--group-column", help="--corpus: keep each value's rows in one split (speaker, chapter, level)")
    p.add_argument("--split-column", help="--corpus: a column of train/valid/test (otherwise splits are made)")
    p.add_argument("--path-column", default="path", help="--corpus: the audio path column")
    p.add_argument("--text-column", default="text", help="--corpus: the transcript column")
    p.add_argument("--labeled-minutes", type=float, help="--corpus: fine-tune on this many minutes of the training "
                   "split (pre-training still sees all of its audio)")
    p.add_argument("--pretrain-overrides", nargs="*", default=[], help="--corpus: extra hydra overrides for pre-training")
    p.add_argument("--finetune-overrides", nargs="*", default=[], help="--corpus: extra hydra overrides for fine-tuning")
    p.add_argument("--init", action="append", default=[], metavar="CKPT",
                   help="--corpus: fine-tune from this pre-trained speech checkpoint (this package's, a released "
                   "data2vec one, or one exported to fairseq's format) instead of pre-training; repeatable, one "
                   "table row each beside random init")
    p.add_argument("--max-seconds", type=float, help="--corpus: leave recordings longer than this out of "
                   "fine-tuning (counted; pre-training still crops them); default: batches follow the longest")
    p.add_argument("--keep-script", action="append", metavar="SCRIPT",
                   help="--corpus: keep only rows written entirely in this Unicode script (LATIN, CYRILLIC, ...; "
                   "repeatable); the others are left out and counted")
    p.set_defaults(func=_speech, log_level=logging.WARNING)

    p = kinds.add_parser("text", help="WordNet glosses: pre-train data2vec_text, classify definitions")
    _common(p, "work/demo-text", 800, 400)
    p.add_argument("--train-per-class", type=int, default=40, help="labeled definitions per category")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per starting point (the table gives the mean)")
    p.add_argument("--vocab-size", type=int, default=4000, help="BPE vocabulary size")
    p.add_argument("--pretrain-overrides", nargs="*", default=[], help="extra hydra overrides for pre-training")
    _method(p, 400)
    p.set_defaults(func=_text, log_level=logging.WARNING)

    p = kinds.add_parser("vision", help="scikit-learn's handwritten digits: pre-train data2vec_vision, classify")
    _common(p, "work/demo-vision", 600, 300)
    _method(p, 200)
    p.set_defaults(func=_vision, log_level=logging.WARNING)

    p = kinds.add_parser("audio-events", help="mixtures of real recorded sounds: pre-train, fine-tune a tagger; mAP")
    _common(p, "work/demo-audio-events", 600, 300)
    p.add_argument("--labeled", type=int, default=200, help="labeled clips for fine-tuning")
    p.add_argument("--seeds", type=int, default=1, help="fine-tuning seeds per starting point (the table gives the mean)")
    p.add_argument("--pretraining", default="tiny_cpu",
                   help="audio/pretraining config: tiny_cpu (data2vec) or v2_tiny_cpu (data2vec 2.0)")
    p.add_argument("--pretrain-overrides", nargs="*", default=[], help="extra hydra overrides for pre-training")
    p.add_argument("--finetune-overrides", nargs="*", default=[], help="extra hydra overrides for fine-tuning")
    p.set_defaults(func=_audio_events, log_level=logging.WARNING)


def _method(p: argparse.ArgumentParser, v2_updates: int) -> None:
    p.add_argument("--method", default="data2vec", choices=["data2vec", "data2vec2"],
                   help="data2vec2: pre-train data2vec 2.0 beside v1 and compare their scores and pre-training time")
    p.add_argument("--v2-pretrain-updates", type=int, default=v2_updates,
                   help="--method data2vec2: data2vec 2.0's pre-training updates")


def _common(p: argparse.ArgumentParser, work: str, pretrain_updates: int, finetune_updates: int) -> None:
    p.add_argument("--work", default=work, help="where the data, checkpoints and results go")
    p.add_argument("--pretrain-updates", type=int, default=pretrain_updates, help="pre-training updates")
    p.add_argument("--finetune-updates", type=int, default=finetune_updates, help="fine-tuning updates per run")


def _speech(args: argparse.Namespace) -> None:
    updates = {k: v for k, v in (("pretrain_updates", args.pretrain_updates),
                                 ("finetune_updates", args.finetune_updates)) if v is not None}
    if args.corpus:
        from ..demos.own_speech import run_corpus_demo

        run_corpus_demo(args.corpus, args.work or "work/demo-own-speech", args.group_column, args.labeled_minutes,
                        split_column=args.split_column,
                        path_column=args.path_column, text_column=args.text_column,
                        pretrain_overrides=args.pretrain_overrides, finetune_overrides=args.finetune_overrides,
                        inits=args.init, max_seconds=args.max_seconds, keep_scripts=args.keep_script,
                        patience=args.patience, **updates)
    else:
        from ..modules.errors import InputError

        for given, option in ((args.init, "--init"), (args.max_seconds, "--max-seconds"),
                              (args.keep_script, "--keep-script"), (args.patience, "--patience")):
            if given:
                raise InputError(f"{option} needs --corpus (the synthesized demo corpus has its own recipe)")
        from ..demos.speech import run_demo

        run_demo(args.work or "work/demo", **updates)


def _text(args: argparse.Namespace) -> None:
    from ..demos.text import run_demo

    run_demo(args.work, args.pretrain_updates, args.finetune_updates, args.train_per_class, args.seeds,
             args.vocab_size, args.pretrain_overrides, args.method, args.v2_pretrain_updates)


def _vision(args: argparse.Namespace) -> None:
    from ..demos.vision import run_demo

    run_demo(args.work, args.pretrain_updates, args.finetune_updates, args.method, args.v2_pretrain_updates)


def _audio_events(args: argparse.Namespace) -> None:
    from ..demos.audio_events import run_demo

    run_demo(args.work, args.pretrain_updates, args.finetune_updates, args.labeled, args.seeds, args.pretraining,
             args.pretrain_overrides, args.finetune_overrides)
