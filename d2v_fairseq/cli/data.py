"""``d2v prepare KIND ...``: data preparation recipes (manifests, labels, binarized text, LMs)."""

import argparse


def register(sub) -> None:
    """Adds ``prepare`` and its recipes to the ``d2v`` subparsers ``sub``."""
    prepare = sub.add_parser("prepare", help="write manifests, labels, binarized text or an LM from raw data",
                             description="Data preparation: each recipe writes what a config's task.data expects.")
    kinds = prepare.add_subparsers(dest="kind", metavar="KIND", required=True)

    p = kinds.add_parser("librispeech", help="LibriSpeech -> wav2vec manifests, .wrd/.ltr labels, dict.ltr.txt")
    p.add_argument("root", help="the LibriSpeech folder (holding train-clean-100/ ...)")
    p.add_argument("out_dir", help="where SUBSET.tsv/.wrd/.ltr, train.tsv, valid.tsv and dict.ltr.txt go")
    p.add_argument("--subsets", nargs="+", help="subsets to read (default: all seven)")
    p.set_defaults(func=_librispeech)

    p = kinds.add_parser("librispeech-lm", help="LibriSpeech's LM resources -> lexicon.txt and lm.arpa")
    p.add_argument("out_dir", help="where lexicon.txt, lm.arpa (and letters.arpa) go")
    p.add_argument("--vocab", required=True, help="librispeech-vocab.txt")
    p.add_argument("--arpa", help="the official 4-gram.arpa(.gz), used as it is")
    p.add_argument("--lm-text", help="librispeech-lm-norm.txt(.gz), to estimate an LM when --arpa is absent")
    p.add_argument("--order", type=int, default=4, help="n-gram order of an estimated LM")
    p.add_argument("--max-sentences", type=int, default=2_000_000, help="LM-text lines to estimate from")
    p.add_argument("--letter-lm-order", type=int, default=0, help="also a letter LM of this order (lexicon-free decoding)")
    p.set_defaults(func=_librispeech_lm)

    p = kinds.add_parser("audioset", help="AudioSet's CSVs + clips -> manifests, .lbl labels, classes.txt")
    p.add_argument("audioset_dir", help="folder with the official CSVs")
    p.add_argument("out_dir", help="where SPLIT.tsv, SPLIT.lbl and classes.txt go")
    p.add_argument("--clips", help="folder of the clips (default: AUDIOSET_DIR/SPLIT for each split)")
    p.add_argument("--splits", nargs="+", default=["balanced_train", "eval"],
                   choices=["balanced_train", "unbalanced_train", "eval"], help="splits to write")
    p.add_argument("--no-check", action="store_true", help="skip the 16 kHz mono header check")
    p.set_defaults(func=_audioset)

    p = kinds.add_parser("glue", help="GLUE's TSVs -> BPE'd, binarized sentence_prediction data")
    p.add_argument("glue_dir", help="GLUE's folders: CoLA/, SST-2/, MRPC/, ...")
    p.add_argument("out_dir", help="where TASK-bin/ go")
    p.add_argument("--tasks", nargs="+", help="GLUE tasks (default: all)")
    p.add_argument("--sp-model", required=True, help="the pre-training sentencepiece model")
    p.add_argument("--dict", required=True, help="the pre-training dict.txt")
    p.set_defaults(func=_glue)

    p = kinds.add_parser("text", help="raw text -> sentencepiece BPE -> binarized masked_lm data")
    p.add_argument("out_dir", help="where dict.txt, train/valid .bin/.idx and the BPE model go")
    p.add_argument("--train", required=True, help="UTF-8 text, one sentence or paragraph per line")
    p.add_argument("--valid", required=True, help="validation text, same format")
    p.add_argument("--vocab-size", type=int, default=50000, help="BPE vocabulary size")
    p.add_argument("--sp-model", help="an existing sentencepiece model to encode with")
    p.set_defaults(func=_text)

    p = kinds.add_parser("images", help="ROOT/SPLIT/CLASS/IMAGE folders -> image manifests + classes.txt")
    p.add_argument("root", help="folder with SPLIT/CLASS/IMAGE")
    p.add_argument("out_dir", help="where SPLIT.tsv and classes.txt go")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="split folders to read")
    p.add_argument("--verify", action="store_true", help="decode every image now (slow; default: headers)")
    p.set_defaults(func=_images)

    p = kinds.add_parser("lm", help="text -> word n-gram LM (ARPA, modified Kneser-Ney) + lexicon")
    p.add_argument("text", help="one sentence per line")
    p.add_argument("out_dir", help="where lm.arpa and lexicon.txt go")
    p.add_argument("--order", type=int, default=3, help="n-gram order")
    p.set_defaults(func=_lm)

    p = kinds.add_parser("demo-speech", help="synthesize the demo spoken corpus (espeak-ng)")
    p.add_argument("out_dir", help="where wav/, the manifests, labels, dict.ltr.txt and lm.txt go")
    p.add_argument("--train", type=int, default=320, help="training utterances")
    p.add_argument("--valid", type=int, default=40, help="validation utterances")
    p.add_argument("--test", type=int, default=40, help="test utterances")
    p.add_argument("--seed", type=int, default=1, help="the corpus is a function of this seed")
    p.set_defaults(func=_demo_speech)


def _librispeech(args: argparse.Namespace) -> None:
    from ..data.librispeech import SUBSETS, prepare

    for subset, count in prepare(args.root, args.out_dir, args.subsets or SUBSETS).items():
        print(f"{args.out_dir}/{subset}.tsv: {count} utterances")


def _librispeech_lm(args: argparse.Namespace) -> None:
    from ..data.librispeech_lm import prepare

    written = prepare(args.out_dir, args.vocab, args.arpa, args.lm_text, args.order, args.max_sentences,
                      args.letter_lm_order)
    print("wrote " + ", ".join(written))


def _audioset(args: argparse.Namespace) -> None:
    from ..data.audioset import prepare

    for split, result in prepare(args.audioset_dir, args.out_dir, args.clips, args.splits, not args.no_check).items():
        print(f"{args.out_dir}/{split}.tsv + .lbl: {result['written']} clips ({len(result['missing'])} missing)")


def _glue(args: argparse.Namespace) -> None:
    from ..data.glue import TASKS, prepare_task

    for name in args.tasks or list(TASKS):
        if name not in TASKS:
            raise SystemExit(f"d2v prepare glue: unknown task {name!r}; choose from {', '.join(TASKS)}")
        print(prepare_task(args.glue_dir, args.out_dir, name, args.sp_model, args.dict), flush=True)


def _text(args: argparse.Namespace) -> None:
    from ..data.text import prepare

    print(prepare(args.train, args.valid, args.out_dir, args.vocab_size, args.sp_model))


def _images(args: argparse.Namespace) -> None:
    from ..data.images import prepare

    for split, count in prepare(args.root, args.out_dir, args.splits, args.verify).items():
        print(f"{args.out_dir}/{split}.tsv: {count} images")


def _lm(args: argparse.Namespace) -> None:
    from ..decoding.lm import build_lm

    arpa, lexicon = build_lm(args.text, args.out_dir, args.order)
    print(f"wrote {arpa} ({args.order}-gram) and {lexicon}")


def _demo_speech(args: argparse.Namespace) -> None:
    from ..demos.speech_corpus import build_corpus

    print(build_corpus(args.out_dir, args.train, args.valid, args.test, args.seed))
