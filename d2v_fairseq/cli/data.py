"""``d2v prepare KIND ...``: data preparation recipes (manifests, labels, binarized text, LMs)."""

import argparse


def register(sub) -> None:
    """Adds ``prepare`` and its recipes to the ``d2v`` subparsers ``sub``."""
    prepare = sub.add_parser("prepare", help="write manifests, labels, binarized text or an LM from raw data",
                             description="Data preparation: each recipe writes what a config's task.data expects.")
    kinds = prepare.add_subparsers(dest="kind", metavar="KIND", required=True)

    p = kinds.add_parser("speech", help="your own speech corpus (table, Kaldi dir or folder) -> manifests, labels, LM",
                         description="Imports a speech corpus: a TSV/CSV table with a header (a path and a "
                         "transcript column), a Kaldi data directory (wav.scp, text, utt2spk) or a folder of audio "
                         "files with same-named .txt transcripts. Converts the audio once to 16 kHz mono FLAC, "
                         "normalizes the transcripts, makes or reads the splits, writes fairseq's manifests, "
                         "letter labels, dict.ltr.txt, pretrain.tsv and an n-gram LM + lexicon from train.")
    p.add_argument("source", help="corpus table (.tsv/.csv), Kaldi data directory, or folder of audio files")
    p.add_argument("out_dir", help="where audio/, the manifests, labels, lm/ and corpus.json go")
    p.add_argument("--path-column", default="path", help="table: the audio path column (relative to the table)")
    p.add_argument("--text-column", default="text", help="table: the transcript column (absent: unlabeled corpus)")
    p.add_argument("--split-column", help="table: a column of train/valid/test (otherwise splits are made)")
    p.add_argument("--group-column", help="table: keep each value's rows in one split (speaker, chapter, ...)")
    p.add_argument("--valid-share", type=float, default=0.1, help="share of the groups held out for validation")
    p.add_argument("--test-share", type=float, default=0.1, help="share of the groups held out for test")
    p.add_argument("--seed", type=int, default=1, help="the made splits are a function of this seed")
    p.add_argument("--case", default="upper", choices=["upper", "lower", "keep"], help="transcript case")
    p.add_argument("--keep-punctuation", action="store_true", help="keep punctuation in the letter targets")
    p.add_argument("--keep-digits", action="store_true", help="keep digits in the letter targets")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave bad rows out and count them per reason (default: stop at the first, naming it)")
    p.add_argument("--lm-order", type=int, default=3, help="n-gram order of the LM from the training text (0: none)")
    p.add_argument("--workers", type=int, default=0, help="audio conversion processes (0: one per core)")
    p.add_argument("--keep-script", action="append", metavar="SCRIPT",
                   help="keep only rows written entirely in this Unicode script (LATIN, CYRILLIC, ...; repeatable); "
                   "the others are left out and counted")
    p.add_argument("--max-seconds", type=float, help="check: leave recordings longer than this out of fine-tuning "
                   "(default: fine-tuning batches follow the longest recording)")
    p.add_argument("--recipe", default="real_cpu", help="check the corpus against audio/pretraining/RECIPE.yaml and "
                   "audio/finetuning/RECIPE.yaml (what `d2v demo speech --corpus` runs)")
    p.set_defaults(func=_speech)

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

    for language, name in (("nl", "Dutch"), ("cs", "Czech")):
        p = kinds.add_parser(f"fillets-{language}",
                             help=f"a corpus table of the {name} dialogs of Debian's fillets-ng-data(-{language})")
        p.add_argument("out_table", help="the corpus table to write (.tsv: path, text, level, voice, english)")
        p.set_defaults(func=_fillets, language=language)

    p = kinds.add_parser("verify", help="check every recording of speech manifests: header and whole decode",
                         description="Reads every header of each manifest (rate, channels, length against the "
                         "manifest) and decodes every recording whole; names every bad line of every manifest "
                         "at once (exit status 2).")
    p.add_argument("manifests", nargs="+", help="wav2vec manifests (SPLIT.tsv)")
    p.add_argument("--sample-rate", type=int, default=16000, help="the rate the manifests must have (default 16000)")
    p.add_argument("--workers", type=int, default=8, help="threads reading and decoding (default 8)")
    p.set_defaults(func=_verify)

    p = kinds.add_parser("demo-speech", help="synthesize the demo spoken corpus (espeak-ng)")
    p.add_argument("out_dir", help="where wav/, the manifests, labels, dict.ltr.txt and lm.txt go")
    p.add_argument("--train", type=int, default=320, help="training utterances")
    p.add_argument("--valid", type=int, default=40, help="validation utterances")
    p.add_argument("--test", type=int, default=40, help="test utterances")
    p.add_argument("--seed", type=int, default=1, help="the corpus is a function of this seed")
    p.set_defaults(func=_demo_speech)


def _speech(args: argparse.Namespace) -> None:
    from ..data.corpus import TextOptions, format_summary, import_corpus

    result = import_corpus(args.source, args.out_dir, args.path_column, args.text_column, args.split_column,
                           args.group_column, args.valid_share, args.test_share, args.seed,
                           TextOptions(args.case, args.keep_punctuation, args.keep_digits), args.skip_bad,
                           args.lm_order, args.workers, keep_scripts=args.keep_script)
    print(format_summary(result.summary()))
    if result.splits:
        from ..demos.own_speech import plan_corpus

        plan_corpus(result.out_dir, args.recipe, args.recipe, max_seconds=args.max_seconds)


def _verify(args: argparse.Namespace) -> None:
    from ..data.manifest import ManifestError, verify_manifest
    from ..modules.errors import InputErrors

    failed = []
    for manifest in args.manifests:
        try:
            print(f"{manifest}: {verify_manifest(manifest, args.sample_rate, args.workers)} recordings decode")
        except ManifestError as error:
            failed.extend(getattr(error, "problems", [str(error)]))
    if failed:
        raise InputErrors(f"{len(args.manifests)} manifest(s): {len(failed)} lines", failed,
                          "task.skip_bad=true leaves those with a bad header out of training")


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


def _fillets(args: argparse.Namespace) -> None:
    from ..demos.fillets import write_table

    counts = write_table(args.out_table, language=args.language)
    print(f"{args.out_table}: {counts['with transcript']} of {counts['recordings']} recordings have a transcript "
          f"({counts['without transcript']} without one, left out), {counts['levels']} levels")


def _demo_speech(args: argparse.Namespace) -> None:
    from ..demos.speech_corpus import build_corpus

    print(build_corpus(args.out_dir, args.train, args.valid, args.test, args.seed))
