"""Speech inference: this package against transformers on the same exported weights.

    .venv/bin/python bench/inference_speed.py [--width tiny|base|base12] [--rounds 3] [--work DIR]
                                              [--precisions fp32,bf16]

A CTC model of the width (tiny: the demo's 4 blocks of 64 dims; base: 768 dims, 12 heads,
2 blocks, the 512-channel front end; base12: the same with Base's 12 blocks) is made in WORK by a few updates of pre-training and CTC
fine-tuning on the synthesized demo corpus (built once), then exported with ``d2v export`` to
transformers' ``Data2VecAudioForCTC``. On the test recordings (their real lengths, batches of
8, padded, transformers given the attention mask), interleaved rounds time:

* features: this package's ``hub.load(...).hidden_states`` against ``Data2VecAudioModel``
  (the CTC model's body) with ``output_hidden_states``;
* CTC emissions: ``Transcriber.emissions`` against ``Data2VecAudioForCTC`` + log-softmax.

Prints the largest difference of each output (last hidden state; log-probabilities at the
unpadded frames) between ours, batched, and transformers on each recording alone (its output
in a padded batch moves by up to about 2 where ours does not: printed too), seconds per round
and the ratio (transformers / ours: above 1, ours is faster). ``--precisions fp32,bf16`` also times
both in bfloat16 (ours: ``precision="bf16"``; transformers: the same torch autocast), interleaved
with the fp32 runs, and prints each precision's seconds and the ratios against transformers in
fp32 and in the same precision.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTHS = {
    "tiny": [],
    "base": ["model.encoder_embed_dim=768", "model.encoder_ffn_embed_dim=3072", "model.encoder_attention_heads=12",
             "model.encoder_layers=2", "model.average_top_k_layers=2", "model.conv_pos_groups=16",
             "model.conv_feature_layers='[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2'"],
    # the whole Base shape: the paper's 12 blocks and its top-8 targets
    "base12": ["model.encoder_embed_dim=768", "model.encoder_ffn_embed_dim=3072", "model.encoder_attention_heads=12",
               "model.encoder_layers=12", "model.average_top_k_layers=8", "model.conv_pos_groups=16",
               "model.conv_feature_layers='[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2'"],
}


def d2v(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "d2v_fairseq", *args], capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"d2v {' '.join(args[:2])} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")


def make_model(width: str, work: str, corpus: str) -> str:
    """A small fine-tuned CTC checkpoint of ``width`` in WORK (made once); its path."""
    ft = os.path.join(work, f"ft-{width}", "checkpoint_last.pt")
    if os.path.isfile(ft):
        return ft
    pre = os.path.join(work, f"pre-{width}")
    d2v("train", "--config-dir", f"{REPO}/examples/audio/pretraining", "--config-name", "tiny_cpu",
        f"task.data={corpus}", f"checkpoint.save_dir={pre}", f"hydra.run.dir={pre}/hydra", "optimization.max_update=2",
        "dataset.disable_validation=true", *WIDTHS[width])
    d2v("train", "--config-dir", f"{REPO}/examples/audio/finetuning", "--config-name", "tiny_cpu",
        f"task.data={corpus}", f"model.w2v_path={pre}/checkpoint_last.pt", f"checkpoint.save_dir={os.path.dirname(ft)}",
        f"hydra.run.dir={os.path.dirname(ft)}/hydra", "optimization.max_update=2", "dataset.disable_validation=true",
        "model.freeze_finetune_updates=0")
    return ft


def batches(corpus: str, size: int = 8):
    """The test recordings, normalized as the model was trained, in padded batches: (B, S) and
    the attention mask (B, S) (1 = audio)."""
    import soundfile as sf

    from d2v_fairseq.data.manifest import read_manifest

    root, entries = read_manifest(os.path.join(corpus, "test.tsv"))
    waves = []
    for entry in entries:
        wave = torch.from_numpy(sf.read(os.path.join(root, entry.path), dtype="float32")[0])
        waves.append(torch.nn.functional.layer_norm(wave, wave.shape))
    out = []
    for i in range(0, len(waves), size):
        group = waves[i:i + size]
        longest = max(len(w) for w in group)
        source = torch.zeros(len(group), longest)
        mask = torch.zeros(len(group), longest, dtype=torch.long)
        for b, w in enumerate(group):
            source[b, :len(w)], mask[b, :len(w)] = w, 1
        out.append((source, mask))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", choices=sorted(WIDTHS), default="tiny")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=os.path.join(REPO, "work", "bench-inference"))
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16 (timed interleaved)")
    args = parser.parse_args()
    precisions = ["fp32"] + [p for p in args.precisions.split(",") if p != "fp32"]  # fp32: the reference point
    from d2v_fairseq.demos.speech_corpus import build_corpus
    from d2v_fairseq.hub import Transcriber, load
    from d2v_fairseq.interop import export
    from transformers import Data2VecAudioForCTC

    corpus = build_corpus(os.path.join(args.work, "corpus"), train=24, valid=8, test=40, seed=3)
    checkpoint = make_model(args.width, args.work, corpus)
    exported = os.path.join(args.work, f"hf-{args.width}")
    if not os.path.isdir(exported):
        export(checkpoint, exported, data_dir=corpus)
    asr = Transcriber(checkpoint, data_dir=corpus)
    reps = load(checkpoint, data_dir=corpus)
    hf = Data2VecAudioForCTC.from_pretrained(exported).eval()
    data = batches(corpus)
    from d2v_fairseq.hub import autocast

    def ours_features():
        return [reps.hidden_states(s, m == 0)[0][-1] for s, m in data]

    def hf_features():
        with torch.no_grad(), autocast(reps.precision, "cpu"):
            return [hf.data2vec_audio(s, attention_mask=m, output_hidden_states=True).hidden_states[-1].float()
                    for s, m in data]

    def ours_ctc():
        return [asr.emissions(s, m == 0) for s, m in data]

    def hf_ctc():
        with torch.no_grad(), autocast(reps.precision, "cpu"):
            return [torch.log_softmax(hf(s, attention_mask=m).logits.float(), -1) for s, m in data]

    def in_precision(fn, precision):
        def run():
            reps.precision = asr.precision = precision
            try:
                return fn()
            finally:
                reps.precision = asr.precision = "fp32"
        return run

    # outputs of ours in batches against transformers on each recording alone (the model's output)
    frames = [asr.model.w2v_encoder.w2v_model.output_lengths(m.sum(-1)).tolist() for _, m in data]
    alone = []
    with torch.no_grad():
        for source, mask in data:
            for b, n in enumerate(mask.sum(-1).tolist()):
                out = hf(source[b:b + 1, :n], output_hidden_states=True)
                alone.append((out.hidden_states[-1][0], torch.log_softmax(out.logits, -1)[0]))
    ours_states = [f[b, :n] for f, lengths in zip(ours_features(), frames, strict=True) for b, n in enumerate(lengths)]
    ours_emissions = [e for batch in ours_ctc() for e in batch]
    padded = [h[b, :n] for h, lengths in zip(hf_ctc(), frames, strict=True) for b, n in enumerate(lengths)]
    feature_diff = max(float((o - a[0]).abs().max()) for o, a in zip(ours_states, alone, strict=True))
    ctc_diff = max(float((o - a[1]).abs().max()) for o, a in zip(ours_emissions, alone, strict=True))
    hf_padding_diff = max(float((p - a[1]).abs().max()) for p, a in zip(padded, alone, strict=True))
    runs = {}
    for precision in precisions:
        suffix = "" if precision == "fp32" else f" {precision}"
        for name, fn in (("ours features", ours_features), ("transformers features", hf_features),
                         ("ours CTC", ours_ctc), ("transformers CTC", hf_ctc)):
            runs[name + suffix] = in_precision(fn, precision)
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    seconds = sum(int(m.sum()) for _, m in data) / 16000
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"speech inference, width {args.width}, {sum(s.size(0) for s, _ in data)} test recordings "
          f"({seconds:.0f} s of audio) in batches of 8, {torch.get_num_threads()} threads, median of {args.rounds}:")
    for what in ("features", "CTC"):
        o, h = median[f"ours {what}"], median[f"transformers {what}"]
        diff = feature_diff if what == "features" else ctc_diff
        print(f"  {what:9s} ours {o:.3f} s  transformers {h:.3f} s  ratio {h / o:.2f}x  max |diff| {diff:.1e}")
    print(f"  transformers' CTC log-probabilities in padded batches vs each recording alone: max |diff| "
          f"{hf_padding_diff:.1e}")
    for precision in precisions[1:]:
        for what in ("features", "CTC"):
            o, h = median[f"ours {what} {precision}"], median[f"transformers {what} {precision}"]
            print(f"  {what:9s} {precision}: ours {o:.3f} s ({median[f'ours {what}'] / o:.2f}x ours fp32)  "
                  f"transformers {h:.3f} s  ratio {h / o:.2f}x; against transformers fp32 "
                  f"{median[f'transformers {what}'] / o:.2f}x")
    print(f"INFERENCE_RESULT {args.width} features {median['transformers features'] / median['ours features']:.3f} "
          f"ctc {median['transformers CTC'] / median['ours CTC']:.3f} diff {max(feature_diff, ctc_diff):.2e}")


if __name__ == "__main__":
    main()
