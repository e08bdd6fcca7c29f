"""``d2v transcribe``, ``d2v tune-lm``, ``d2v evaluate``, ``d2v export``: using checkpoints."""

import argparse
import json
import logging


def add_decoder_options(p: argparse.ArgumentParser, default_decoder: str = "viterbi") -> None:
    """The CTC decoder's options, one name each across subcommands."""
    p.add_argument("--decoder", default=default_decoder, choices=["viterbi", "lexicon_beam", "lexicon_free_beam"],
                   help="viterbi (greedy), lexicon_beam (words of --lexicon, word KenLM), "
                   "lexicon_free_beam (letters, letter KenLM)")
    p.add_argument("--lm", help="KenLM language model (ARPA or binary) for the beam decoders")
    p.add_argument("--lexicon", help="lexicon (WORD<TAB>spelling) for lexicon_beam")
    p.add_argument("--beam", type=int, help="beam size (default 500, or 50 for tune-lm)")
    p.add_argument("--lm-weight", type=float, help="weight of the LM score (default 2)")
    p.add_argument("--word-score", type=float, help="score added per word (default -1)")
    p.add_argument("--sil-score", type=float, help="score added per silence (default 0)")
    p.add_argument("--unk-score", type=float, help="score of an unknown word (default -inf)")


def decoder_args(args: argparse.Namespace) -> dict:
    """The Transcriber's decoder options from parsed ``add_decoder_options`` arguments."""
    return {key: getattr(args, key) for key in
            ("decoder", "lm", "lexicon", "beam", "lm_weight", "word_score", "sil_score", "unk_score")}


def register(sub) -> None:
    """Adds the checkpoint commands to the ``d2v`` subparsers ``sub``."""
    p = sub.add_parser("transcribe", help="transcribe audio files with a CTC fine-tuned checkpoint",
                       description="Prints FILE<TAB>TRANSCRIPT per audio file (any rate and channels; "
                       "read as 16 kHz mono).")
    p.add_argument("checkpoint", help="a CTC fine-tuned checkpoint (checkpoint_best.pt)")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3, ...)")
    p.add_argument("--data", help="the fine-tuning data folder (its dict.ltr.txt), if it moved since fine-tuning")
    add_decoder_options(p)
    p.set_defaults(func=_transcribe, log_level=logging.WARNING)

    p = sub.add_parser("tune-lm", help="grid-search the LM weight and word score on a labeled subset",
                       description="Computes the subset's CTC emissions once, then decodes them with lexicon beam "
                       "search for every (lm weight, word score) pair; prints each WER and the best pair.")
    p.add_argument("checkpoint", help="a CTC fine-tuned checkpoint")
    p.add_argument("data", help="folder with SUBSET.tsv/.ltr and dict.ltr.txt")
    p.add_argument("--subset", default="valid", help="the labeled subset to tune on")
    p.add_argument("--lm", required=True, help="KenLM language model (ARPA or binary)")
    p.add_argument("--lexicon", required=True, help="lexicon (WORD<TAB>spelling)")
    p.add_argument("--beam", type=int, default=50, help="beam size")
    p.add_argument("--lm-weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 3.0], help="LM weights to try")
    p.add_argument("--word-scores", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0], help="word scores to try")
    p.set_defaults(func=_tune_lm, log_level=logging.WARNING)

    p = sub.add_parser("evaluate", help="score a fine-tuned checkpoint: WER/CER, top-1/top-5, mAP or accuracy",
                       description="Scores any fine-tuned checkpoint of the package by what it predicts: CTC -> WER "
                       "and CER; image classifier -> top-1/top-5; audio tagger -> mAP; sentence_prediction -> "
                       "accuracy, MCC (F1 for two classes; Pearson/Spearman for regression).")
    p.add_argument("checkpoint", help="a fine-tuned checkpoint")
    p.add_argument("data", help="the data folder (manifests and labels); images: also a CLASS/IMAGE folder")
    p.add_argument("--split", help="subset to score (default: test for CTC and text, val for images, eval for tags)")
    p.add_argument("--classes", help="images: classes.txt matching a CLASS/IMAGE folder to labels")
    p.add_argument("--top", type=int, default=10, help="images and tags: how many classes to list, best first")
    p.add_argument("--per-class", help="images and tags: write every class's score to this file (TSV)")
    p.add_argument("--json", help="write all the scores to this JSON file")
    add_decoder_options(p)
    p.set_defaults(func=_evaluate, log_level=logging.WARNING)

    p = sub.add_parser("export", help="export a checkpoint to Hugging Face transformers (offline)",
                       description="Writes a folder that transformers' from_pretrained loads (weights as "
                       "safetensors); refuses, with the reason, what transformers cannot represent exactly.")
    p.add_argument("checkpoint", help="a checkpoint of the package (pre-trained or fine-tuned)")
    p.add_argument("out_dir", help="the folder to write")
    p.add_argument("--data", help="a fine-tuned checkpoint's data folder (its dictionary), if it moved")
    p.add_argument("--sp-model", help="text: the sentencepiece model of the checkpoint's data")
    p.set_defaults(func=_export)


def _transcribe(args: argparse.Namespace) -> None:
    from ..data.audio import read_audio
    from ..hub import Transcriber

    asr = Transcriber(args.checkpoint, data_dir=args.data, **decoder_args(args))
    for path in args.audio:
        print(f"{path}\t{asr.transcribe(read_audio(path))}", flush=True)


def _tune_lm(args: argparse.Namespace) -> None:
    from ..hub import tune_lm

    results = tune_lm(args.checkpoint, args.data, args.subset, args.lm, args.lexicon, args.beam, args.lm_weights,
                      args.word_scores, report=lambda line: print(line, flush=True))
    wer, lm_weight, word_score = results[0]
    print(f"best: --lm-weight {lm_weight} --word-score {word_score}: WER {wer:.2f} on {args.subset}")


def _evaluate(args: argparse.Namespace) -> None:
    from ..evaluation import checkpoint_kind, evaluate
    from ..hub import read_checkpoint

    kind = checkpoint_kind(read_checkpoint(args.checkpoint)["cfg"])
    options = {"ctc": decoder_args(args), "images": {"classes": args.classes}}.get(kind, {})
    result = evaluate(args.checkpoint, args.data, args.split, **options)
    per_class = result.pop("per_class", None)
    scores = "  ".join(f"{key} {value:.2f}" for key, value in result.items() if isinstance(value, float))
    print(f"{args.checkpoint} on {result['split']} ({result['n']} items): {scores}")
    if per_class:
        ranked = sorted(per_class.items(), key=lambda kv: -kv[1])
        for name, value in ranked[: args.top]:
            print(f"  {value:6.2f}  {name}")
        if args.per_class:
            with open(args.per_class, "w", encoding="utf-8") as f:
                f.write("".join(f"{name}\t{value:.4f}\n" for name, value in ranked))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({**result, "per_class": per_class}, f, indent=1)


def _export(args: argparse.Namespace) -> None:
    from ..interop import export

    written, out_dir = export(args.checkpoint, args.out_dir, args.data, args.sp_model)
    print(f"wrote {written} to {out_dir}")
