"""``d2v transcribe``, ``d2v tune-lm``, ``d2v evaluate``, ``d2v export``: using checkpoints."""

import argparse
import json
import logging
import os
import sys

from .train import add_array_options, array_options


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


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """``--precision``: one name and meaning across the commands that run a model."""
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="the model's forward pass: fp32, bf16 (CPU and GPU), fp16 (GPU); outputs stay fp32")


def decoder_args(args: argparse.Namespace) -> dict:
    """The Transcriber's decoder options from parsed ``add_decoder_options`` arguments."""
    return {key: getattr(args, key) for key in
            ("decoder", "lm", "lexicon", "beam", "lm_weight", "word_score", "sil_score", "unk_score")}


def register(sub) -> None:
    """Adds the checkpoint commands to the ``d2v`` subparsers ``sub``."""
    p = sub.add_parser("transcribe", help="transcribe audio files, folders or manifests with a CTC fine-tuned checkpoint",
                       description="Prints FILE<TAB>TRANSCRIPT per recording (any rate and channels; read as 16 kHz "
                       "mono; any length: longer than --window, it is read in overlapping windows). --output FILE "
                       "writes those lines to FILE instead, batched by length, appended and synced per batch: the same "
                       "command again continues where a killed run stopped; unreadable recordings are named and "
                       "skipped (listed in FILE.failed.tsv). --timestamps json gives one JSON line per recording with "
                       "each word's start and end; --timestamps srt writes FILE.srt subtitles into --output-dir.")
    p.add_argument("checkpoint", help="a CTC fine-tuned checkpoint (checkpoint_best.pt)")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3, ...), folders (searched recursively) "
                   "and fairseq manifests")
    p.add_argument("--output", help="write PATH<TAB>TRANSCRIPT lines (JSON lines with --timestamps json) to this file, "
                   "resumable; without it, lines go to stdout")
    p.add_argument("--shard", help="--output: transcribe only shard I of N (I/N, from 0): a contiguous share of the "
                   "inputs in their order, as fairseq's simple_kmeans splits a manifest")
    p.add_argument("--max-tokens", type=int, default=4_800_000, help="--output: padded samples per batch (default "
                   "4.8M: 300 s of audio)")
    p.add_argument("--batch-size", type=int, default=16, help="--output: recordings per batch at most")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    add_precision_option(p)
    p.add_argument("--data", help="the fine-tuning data folder (its dict.ltr.txt), if it moved since fine-tuning")
    p.add_argument("--window", type=float, default=30.0, help="seconds read at once (default 30; 0: whole files)")
    p.add_argument("--context", type=float, default=2.5, help="seconds of overlap on each side of a window's "
                   "kept centre (default 2.5)")
    p.add_argument("--timestamps", choices=["json", "srt"], help="word start and end times (from the CTC alignment)")
    p.add_argument("--output-dir", default=".", help="--timestamps srt: where FILE.srt goes (default: here)")
    add_array_options(p, "transcribe --output's inputs")
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
    add_precision_option(p)
    add_decoder_options(p)
    p.set_defaults(func=_evaluate, log_level=logging.WARNING)

    p = sub.add_parser("features", help="write every layer's representations of audio, text or images",
                       description="Features of any checkpoint's encoder (pre-trained, 2.0, fine-tuned). Layer 0 is "
                       "the input of the first block, layer i the output of block i (transformers' numbering).")
    p.add_argument("checkpoint", help="a checkpoint of the package or a released-format one")
    p.add_argument("input", help="speech: manifest, corpus table, folder, list of files or one file; text: a UTF-8 "
                   "file, one item per line; images: a folder or an image manifest")
    p.add_argument("out_dir", help="where ID.npy (ID: the item's path under the input's root) and index.tsv go, or "
                   "the hubert dump; the same command again skips what is complete")
    p.add_argument("--layers", default="all", help="all, last, or comma-separated layer numbers")
    p.add_argument("--pool", default="none", choices=["none", "mean"], help="mean over each item's valid frames")
    p.add_argument("--format", default="npy", choices=["npy", "hubert"],
                   help="npy: one (layers, T, C) file per item; hubert: fairseq's simple_kmeans dump (one layer)")
    p.add_argument("--split", default="train", help="--format hubert: the dump's split name ({split}_{rank}_{nshard}.npy)")
    p.add_argument("--shard", help="only shard I of N (I/N, from 0): a contiguous share of the inputs in their order, "
                   "as fairseq's simple_kmeans splits a manifest (--format hubert writes {split}_I_N.npy/.len)")
    p.add_argument("--max-tokens", type=int, default=1_600_000, help="padded input units per batch (samples, tokens)")
    p.add_argument("--batch-size", type=int, default=64, help="items per batch at most")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    add_precision_option(p)
    p.add_argument("--sp-model", help="text: the sentencepiece model (default: beside the data's dict.txt)")
    p.add_argument("--data", help="text: the folder with the checkpoint's dict.txt, if not where it was trained "
                   "(released checkpoints name the authors' folders)")
    add_array_options(p, "extract the features")
    p.set_defaults(func=_features, log_level=logging.WARNING)

    p = sub.add_parser("probe", help="layer-wise linear probe of frozen features; prints a table, writes a plot",
                       description="Mean-pooled features of every layer, a logistic regression per layer on the "
                       "training split, accuracy on the test split; one line per --ckpt in the PNG plot.")
    p.add_argument("table", help="a labeled corpus table (.tsv/.csv with a path and a label column)")
    p.add_argument("--ckpt", action="append", required=True, metavar="[NAME=]CHECKPOINT",
                   help="a checkpoint to probe (repeat it; NAME= labels its line, default: the file's folder; "
                   "random:CHECKPOINT is its architecture with fresh weights)")
    p.add_argument("--label-column", required=True, help="the column holding the label to predict")
    p.add_argument("--path-column", default="path", help="the audio or image path column")
    p.add_argument("--split-column", help="a column of train/test (otherwise whole groups go to test)")
    p.add_argument("--group-column", help="keep each value's rows in one split (speaker, level, ...)")
    p.add_argument("--test-share", type=float, default=0.2, help="share of the groups held out for test")
    p.add_argument("--seed", type=int, default=1, help="the split and the classifiers are a function of it")
    p.add_argument("--plot", default="probe.png", help="the PNG to write")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out rows whose audio is missing, unreadable or empty (listed), instead of stopping")
    add_precision_option(p)
    p.set_defaults(func=_probe, log_level=logging.WARNING)

    p = sub.add_parser("export", help="export a checkpoint to Hugging Face transformers or fairseq's reference",
                       description="Writes a folder that transformers' from_pretrained loads (weights as "
                       "safetensors); refuses, with the reason, what transformers cannot represent exactly.")
    p.add_argument("checkpoint", help="a checkpoint of the package (pre-trained or fine-tuned)")
    p.add_argument("out_dir", help="the folder to write (--format fairseq: the checkpoint file to write)")
    p.add_argument("--format", default="transformers", choices=["transformers", "fairseq"],
                   help="transformers: a from_pretrained folder; fairseq: a checkpoint that fairseq's own "
                   "examples/data2vec speech model loads (strict, with fairseq's audio_pretraining task)")
    p.add_argument("--data", help="a fine-tuned checkpoint's data folder (its dictionary), if it moved")
    p.add_argument("--sp-model", help="text: the sentencepiece model of the checkpoint's data")
    p.set_defaults(func=_export)


def _transcribe(args: argparse.Namespace) -> None:
    from ..hub import Transcriber
    from ..modules.errors import InputError

    if args.output and args.timestamps == "srt":
        raise InputError("--timestamps srt writes one subtitle file per recording; with --output use --timestamps json")
    if args.shard and not args.output:
        raise InputError("--shard needs --output (each shard writes its own file)")
    options, logs = array_options(args, "d2v-transcribe", (args.output or ".") + ".slurm")
    if options is not None:
        if not args.output:
            raise InputError("--slurm needs --output (the shards' files are joined into it)")
        _transcribe_on_slurm(args, options, logs)
        return
    asr = Transcriber(args.checkpoint, data_dir=args.data, precision=args.precision, **decoder_args(args))
    asr.model.to(args.device)
    if args.output:
        from ..transcription import closing_lines, transcribe_corpus

        summary = transcribe_corpus(asr, args.audio, args.output, max_tokens=args.max_tokens,
                                    batch_size=args.batch_size, window=args.window, context=args.context,
                                    timestamps=args.timestamps, shard=args.shard)
        _print_closing(closing_lines(summary, args.output))
        return
    from ..transcription import transcribe_to_stdout

    transcribe_to_stdout(asr, args.audio, args.window, args.context, args.timestamps, args.output_dir)


def _transcribe_on_slurm(args: argparse.Namespace, options, logs: str) -> None:
    from ..slurm import run_shards
    from ..transcription import closing_lines, join_shards, summed

    kwargs = dict(checkpoint=os.path.abspath(args.checkpoint), sources=[os.path.abspath(a) for a in args.audio],
                  output=os.path.abspath(args.output), data_dir=args.data, decoder=decoder_args(args),
                  device=args.device, precision=args.precision, max_tokens=args.max_tokens,
                  batch_size=args.batch_size, window=args.window,
                  context=args.context, timestamps=args.timestamps)
    results = run_shards("d2v_fairseq.transcription", "transcribe_shard", kwargs, args.shards, options, logs,
                         "d2v transcribe")
    if results is None:
        return
    join_shards(kwargs["output"], args.shards)
    _print_closing(closing_lines(summed(results), args.output))


def _print_closing(lines) -> None:
    """A corpus run's closing lines: WARNINGs on stderr, the summary on stdout."""
    for line in lines:
        print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout, flush=True)


def _tune_lm(args: argparse.Namespace) -> None:
    from ..hub import tune_lm

    results = tune_lm(args.checkpoint, args.data, args.subset, args.lm, args.lexicon, args.beam, args.lm_weights,
                      args.word_scores, report=lambda line: print(line, flush=True))
    wer, lm_weight, word_score = results[0]
    print(f"best: --lm-weight {lm_weight} --word-score {word_score}: WER {wer:.2f} on {args.subset}")


def _evaluate(args: argparse.Namespace) -> None:
    from ..evaluation import evaluate

    result = evaluate(args.checkpoint, args.data, args.split, classes=args.classes, precision=args.precision,
                      **decoder_args(args))
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


def _features(args: argparse.Namespace) -> None:
    from ..features import extract

    options, logs = array_options(args, "d2v-features", os.path.join(args.out_dir, "slurm"))
    if options is not None:
        from ..slurm import run_shards

        kwargs = dict(checkpoint=os.path.abspath(args.checkpoint), source=os.path.abspath(args.input),
                      out_dir=os.path.abspath(args.out_dir), layers=args.layers, pool=args.pool, fmt=args.format,
                      split=args.split, max_tokens=args.max_tokens, max_items=args.batch_size, device=args.device,
                      sp_model=args.sp_model, data_dir=args.data, precision=args.precision)
        results = run_shards("d2v_fairseq.features", "extract", kwargs, args.shards, options, logs, "d2v features")
        if results is not None:
            items, frames = sum(r["items"] for r in results), sum(r["frames"] for r in results)
            print(f"{items} items, {frames} frames in {args.shards} shards -> {args.out_dir}")
        return
    summary = extract(args.checkpoint, args.input, args.out_dir, args.layers, args.pool, args.format, args.split,
                      args.max_tokens, args.batch_size, args.device, args.sp_model, progress=True,
                      data_dir=args.data, shard=args.shard, precision=args.precision)
    for source, reason in summary["failed"]:
        print(f"WARNING: {source}: no features: {reason}", file=sys.stderr, flush=True)
    rate = f", {summary['audio_s_per_s']:.1f} audio s/s" if "audio_s_per_s" in summary else ""
    failed = f", {len(summary['failed'])} unreadable (listed in failed.tsv)" if summary["failed"] else ""
    print(f"{summary['items']} items, {summary['skipped']} already complete{failed}; {summary['frames']} frames, "
          f"layers {summary['layers']} -> {args.out_dir} ({summary['seconds']:.1f} s: "
          f"{summary['items_per_s']:.1f} items/s{rate})")


def _probe(args: argparse.Namespace) -> None:
    import os

    from ..probe import format_table, probe

    checkpoints = {}
    for spec in args.ckpt:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        checkpoints[name or os.path.basename(os.path.dirname(os.path.abspath(path)))] = path
    results = probe(checkpoints, args.table, args.label_column, args.path_column, args.split_column,
                    args.group_column, args.test_share, args.seed, args.plot, args.skip_bad,
                    report=lambda line: print(line, flush=True), precision=args.precision)
    print(format_table(results))
    print(f"plot: {args.plot}")


def _export(args: argparse.Namespace) -> None:
    from ..interop import export, export_fairseq

    if args.format == "fairseq":
        print(f"wrote {export_fairseq(args.checkpoint, args.out_dir)} to {args.out_dir}")
        return
    written, out_dir = export(args.checkpoint, args.out_dir, args.data, args.sp_model)
    print(f"wrote {written} to {out_dir}")
