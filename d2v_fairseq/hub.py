"""Using checkpoints from Python: load any checkpoint of the package (pre-trained, data2vec 2.0,
fine-tuned) or a released-format one, and transcribe with a fine-tuned CTC model.

    from d2v_fairseq.hub import Transcriber, load_checkpoint
    model, cfg, task = load_checkpoint("checkpoint_best.pt")
    asr = Transcriber("checkpoint_best.pt", decoder="lexicon_beam", lm="lm.arpa", lexicon="lexicon.txt")
    print(asr.transcribe(waveform_16k))          # one recording, a 1-D float array, any length
    transcript = asr.timed(waveform_16k)         # .text and .words: [TimedWord(word, start, end)]

A recording longer than ``window`` seconds (default 30) is read in windows that overlap by
twice ``context`` seconds, each normalized on its own, and the centres of their emissions are
joined (``decoding.timing.windows``): time and memory grow linearly with the length, and a
recording that fits is read whole, as before.

This is the one place above the registered layers that loads checkpoints: models, tasks and
decoders never do (fine-tuning models read their pre-trained encoder through
``models.pretrained``).
"""

import itertools
import logging
import os
import pickle
import time
import warnings
import zipfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils
from fairseq.tasks import TASK_DATACLASS_REGISTRY
from omegaconf import open_dict

from . import criterions, models, tasks  # noqa: F401  (registers the package's names with fairseq)
from .decoding.generator import build_decoder, ctc_emissions
from .data.audio import SAMPLE_RATE
from .decoding.timing import TimedWord, word_timings, windows
from .models.pretrained import complete_saved_configs, undeclared_keys
from .modules.errors import InputError
from .modules.metrics import char_error_rate, word_error_rate

logger = logging.getLogger(__name__)

# tasks of fairseq's examples/data2vec that released checkpoints name, and this package's equivalent
TASK_EQUIVALENTS = {"mae_image_classification": "d2v_image_classification"}


def read_checkpoint(path: str, arg_overrides: Optional[Dict] = None) -> Dict:
    """A checkpoint's saved state (on CPU); ``InputError`` naming the file when it is missing or
    is not a fairseq checkpoint."""
    if not os.path.isfile(path):
        raise InputError("no such checkpoint file", path=path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic.startswith(b"PK") and magic[:1] != b"\x80":  # torch.save writes a zip (or a legacy pickle)
        raise InputError("not a PyTorch checkpoint (torch.save writes a zip archive; this file is not one)",
                         path=path)
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path, arg_overrides)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"not a PyTorch checkpoint ({first[:120]})", path=path) from None
    if not isinstance(state, dict) or state.get("cfg") is None or "model" not in state:
        raise InputError("not a fairseq checkpoint (no 'cfg' and 'model' entries)", path=path)
    return state


def load_checkpoint(
    path: str, arg_overrides: Optional[Dict] = None, task: Optional[str] = None
) -> Tuple[torch.nn.Module, object, object]:
    """(model, cfg, task) from a checkpoint, warning about the config keys it drops.

    ``task`` names the task to build instead of the saved one (as fairseq-generate's
    ``--task``): e.g. ``d2v_audio_ctc`` for a checkpoint fine-tuned with ``audio_finetuning``.
    """
    state = read_checkpoint(path, arg_overrides)
    saved_task = state["cfg"].task.get("_name") if state["cfg"].get("task") is not None else None
    if task is None and saved_task in TASK_EQUIVALENTS and saved_task not in TASK_DATACLASS_REGISTRY:
        task = TASK_EQUIVALENTS[saved_task]
        logger.info(f"{path}: task {saved_task} (fairseq's examples/data2vec, not registered here) read as {task}")
        if task == "d2v_image_classification" and state["cfg"].task.get("num_classes") is None:
            with open_dict(state["cfg"].task):
                state["cfg"].task.num_classes = state["cfg"].model.get("num_classes", 0)
    if task is not None:
        with open_dict(state["cfg"].task):
            state["cfg"].task._name = task
    complete_saved_configs(state["cfg"], path)
    for group, registry in (("model", None), ("task", TASK_DATACLASS_REGISTRY)):
        sub = state["cfg"].get(group)
        dropped = undeclared_keys(sub, registry) if sub is not None else []
        if dropped:
            message = (f"{path}: {group} config keys not declared by {sub._name} are ignored: {', '.join(dropped)}")
            warnings.warn(message, stacklevel=2)
            logger.warning(message)
            with open_dict(sub):
                for key in dropped:
                    del sub[key]
    try:
        loaded, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides, state=state)
    except FileNotFoundError as error:
        missing = error.filename or str(error)
        raise InputError(f"the checkpoint's task reads {missing}, which is not here (the data folder it was "
                         "trained with); give the folder holding it (--data DIR, or data_dir= in Python)",
                         path=path) from None
    return loaded[0], cfg, task


PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, device: str) -> None:
    """Raises InputError for a precision this device cannot run (fp16 needs a CUDA device)."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise InputError("--precision fp16 needs a CUDA device (--device cuda); on a CPU use bf16")


def autocast(precision: str, device: str):
    """The context that runs a forward pass in ``precision``: torch's autocast (weights stay fp32,
    matrix products and convolutions in bf16/fp16, reductions and norms as autocast keeps them);
    nothing for fp32."""
    import contextlib

    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    return torch.autocast(device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def model_device(model: torch.nn.Module) -> str:
    """The device of a model's first parameter, as a string (``cpu``, ``cuda:0``)."""
    return str(next(model.parameters()).device)


@dataclass
class Transcript:
    """A recording's text and its timed words."""
    text: str
    words: List[TimedWord]


class Transcriber:
    """A fine-tuned CTC model plus a decoder; see the module docstring.

    Decoder options (``configure``): decoder (viterbi, lexicon_beam, lexicon_free_beam), lm,
    lexicon, lm_weight, word_score, sil_score, unk_score, beam, beam_threshold, beam_size_token.
    """

    # Python names -> d2v_audio_ctc's config fields (named apart from fairseq-generate's own)
    FIELDS = {"lm": "kenlm_model", "lm_weight": "kenlm_weight", "beam": "ctc_beam",
              "beam_threshold": "ctc_beam_threshold", "beam_size_token": "ctc_beam_size_token"}

    def __init__(self, checkpoint: str, decoder: str = "viterbi", data_dir: Optional[str] = None,
                 precision: str = "fp32", **decoder_args):
        """``precision``: fp32, bf16 or fp16 (CUDA only) for the model's forward pass (autocast);
        emissions and decoding stay fp32."""
        self.precision = precision
        check_precision(precision, "cuda" if torch.cuda.is_available() else "cpu")  # fp16: only with CUDA
        overrides = {"data": data_dir} if data_dir else None
        # the decoders' options are fields of d2v_audio_ctc, whichever task fine-tuned the model
        self.model, cfg, self.task = load_checkpoint(checkpoint, arg_overrides=overrides, task="d2v_audio_ctc")
        self.model.eval()
        self.normalize = cfg.task.normalize
        self.configure(decoder=decoder, **decoder_args)

    def configure(self, **decoder_args) -> None:
        """Switches the decoder or its options (see the class docstring)."""
        for key, value in decoder_args.items():
            if value is not None:
                setattr(self.task.cfg, self.FIELDS.get(key, key), value)
        self.decoder = build_decoder(self.task.cfg, self.task.target_dictionary)

    def emissions(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """Log-probabilities per utterance, each (T_b, V) on the CPU, from waveforms (B, S) (moved to
        the model's device)."""
        device = model_device(self.model)
        padding_mask = None if padding_mask is None else padding_mask.to(device)
        with autocast(self.precision, device):
            emitted = ctc_emissions(self.model, source.to(device), padding_mask)
        return [e.float().cpu() for e in emitted]

    def text(self, hypo: Dict) -> str:
        """A hypothesis as words: the decoder's words, else its letters post-processed."""
        if hypo["words"]:
            return " ".join(hypo["words"])
        return self.task.target_dictionary.string(hypo["tokens"], "letter")

    def samples_per_frame(self) -> int:
        """Input samples per output frame: the product of the front end's strides (320)."""
        return int(np.prod([m.stride[0] for m in self.model.modules() if isinstance(m, torch.nn.Conv1d)]))

    def recording_emissions(self, waveform, window: float = 30.0, context: float = 2.5,
                            batch: int = 8) -> torch.Tensor:
        """Emissions (T, V) of one 16 kHz mono recording of any length: whole when it fits in
        ``window`` seconds (0: always whole), else the kept centres of overlapping windows
        (see the module docstring), ``batch`` windows per forward pass."""
        source = torch.as_tensor(np.asarray(waveform), dtype=torch.float32).flatten()
        rate = self.samples_per_frame()
        cuts = windows(source.numel(), int(window * SAMPLE_RATE) // rate * rate,
                       int(context * SAMPLE_RATE) // rate * rate)
        chunks = []
        for read_start, read_end, _, _ in cuts:
            chunk = source[read_start:read_end]
            chunks.append(F.layer_norm(chunk, chunk.shape) if self.normalize else chunk)
        full = [c for c in chunks if c.numel() == chunks[0].numel()]  # every window but perhaps the last
        emitted: List[torch.Tensor] = []
        for i in range(0, len(full), batch):
            emitted += self.emissions(torch.stack(full[i:i + batch]))
        emitted += [self.emissions(c[None])[0] for c in chunks[len(full):]]
        if len(cuts) == 1:
            return emitted[0]
        kept = []
        for (read_start, _, keep_start, keep_end), e in zip(cuts, emitted, strict=True):
            last = keep_end == source.numel()
            kept.append(e[(keep_start - read_start) // rate:None if last else (keep_end - read_start) // rate])
        return torch.cat(kept)

    def batch_emissions(self, waveforms: Sequence) -> List[torch.Tensor]:
        """Emissions (T_i, V) of several 16 kHz mono recordings in one forward pass (each normalized
        alone when the task normalizes, then padded)."""
        return self.emissions(*waveform_batch(waveforms, self.normalize))

    def transcribe(self, waveform, window: float = 30.0, context: float = 2.5) -> str:
        """One 16 kHz mono recording (1-D array or tensor), any length -> text."""
        return self.text(self.decoder.decode(self.recording_emissions(waveform, window, context)))

    def timed(self, waveform, window: float = 30.0, context: float = 2.5) -> "Transcript":
        """One recording -> its text and its words with start and end seconds (from the
        decoder's frame alignment)."""
        return self.timed_from(self.recording_emissions(waveform, window, context))

    def timed_from(self, emissions: torch.Tensor) -> "Transcript":
        """A recording's emissions (T, V) -> its text and timed words."""
        hypo = self.decoder.decode(emissions)
        if hypo.get("frames") is None:
            raise InputError("this decoder returned no frame alignment: word timings need one (use the viterbi "
                             "decoder)", path="--timestamps")
        words = word_timings(hypo["frames"], self.decoder.blank, self.decoder.silence,
                             self.task.target_dictionary.symbols, self.samples_per_frame() / SAMPLE_RATE)
        return Transcript(self.text(hypo), words)

    def subset_emissions(self, subset: str, max_tokens: int = 1_000_000):
        """(emissions per utterance, reference texts) for a subset of the task's data."""
        self.task.load_dataset(subset)
        dataset = self.task.dataset(subset)
        batches = self.task.get_batch_iterator(dataset, max_tokens=max_tokens).next_epoch_itr(shuffle=False)
        emissions, references = [], []
        for sample in batches:
            emissions += self.emissions(sample["net_input"]["source"], sample["net_input"].get("padding_mask"))
            for target in sample["target"]:
                tokens = target[target != self.task.target_dictionary.pad()]
                references.append(self.task.target_dictionary.string(tokens, "letter"))
        return emissions, references

    def score(self, emissions: Sequence[torch.Tensor], references: Sequence[str]) -> Dict[str, float]:
        """{"wer", "cer" (percent), "n"} of the current decoder on precomputed emissions."""
        hypotheses = [self.text(self.decoder.decode(e)) for e in emissions]
        return {"wer": word_error_rate(references, hypotheses), "cer": char_error_rate(references, hypotheses),
                "n": len(references)}


def tune_lm(checkpoint: str, data: str, subset: str, lm: str, lexicon: str, beam: int = 50,
            lm_weights: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 3.0),
            word_scores: Sequence[float] = (-2.0, -1.0, 0.0, 1.0),
            report: Callable[[str], None] = print) -> List[Tuple[float, float, float]]:
    """Grid search of (lm_weight, word_score) for lexicon beam search on ``subset``: the
    emissions are computed once, then decoded with every pair. Returns (WER, lm_weight,
    word_score) per pair, best first; ``report`` receives a line per pair."""
    asr = Transcriber(checkpoint, data_dir=data, decoder="lexicon_beam", lm=lm, lexicon=lexicon, beam=beam)
    emissions, references = asr.subset_emissions(subset)
    report(f"{len(emissions)} utterances of {subset}; grid of {len(lm_weights) * len(word_scores)} "
           "(lm_weight, word_score) pairs")
    results = []
    for lm_weight, word_score in itertools.product(lm_weights, word_scores):
        asr.configure(lm_weight=lm_weight, word_score=word_score)
        start = time.perf_counter()
        wer = asr.score(emissions, references)["wer"]
        results.append((wer, lm_weight, word_score))
        report(f"  lm_weight {lm_weight:6.2f}  word_score {word_score:6.2f}  WER {wer:6.2f}  "
               f"({time.perf_counter() - start:.1f} s)")
    return sorted(results)


# --- representations ------------------------------------------------------------------------
SPEECH_MODELS = ("data2vec_audio", "data2vec2_audio")


class Representations:
    """Every layer's features of a loaded checkpoint's encoder (``load``), for any modality.

    ``hidden_states(batch)`` -> (list of (B, T, C), padding (B, T) or None): index 0 the input
    of the first block, index i the output of block i, as transformers' ``output_hidden_states``
    numbers them for the exported model. ``batch(items)`` turns raw items into that input:
    speech, 1-D float arrays at 16 kHz (normalized as the checkpoint's task says); text,
    strings (the checkpoint's sentencepiece BPE and dictionary); images, file paths (the
    evaluation transform). ``downsample_rate``: input units per output step (320 samples for
    speech, 1 token for text, the patch size in pixels for images, whose steps are CLS + patches).
    """

    def __init__(self, encoder: torch.nn.Module, modality: str, normalize: bool = False, dictionary=None,
                 sp_model: Optional[str] = None, image_size: int = 0, checkpoint: str = ""):
        self.encoder, self.modality, self.normalize = encoder.eval(), modality, normalize
        self.precision = "fp32"  # of the forward pass (autocast); set by load(precision=)
        self.dictionary, self.sp_model, self.image_size, self.checkpoint = dictionary, sp_model, image_size, checkpoint
        self._sp = None
        if hasattr(encoder, "modality_encoders"):  # data2vec_multi: one modality encoder + shared blocks
            self.downsample_rate, self.num_layers = encoder.downsample_rate(), len(encoder.blocks) + 1
        elif modality == "speech":
            self.downsample_rate = int(np.prod([stride for _, _, stride in encoder.conv_layers]))
            self.num_layers = len(encoder.encoder.layers) + 1
        elif modality == "text":
            self.downsample_rate, self.num_layers = 1, len(encoder.body.layers) + 1
        else:
            self.downsample_rate, self.num_layers = encoder.cfg.patch_size, len(encoder.encoder.blocks) + 1

    @torch.no_grad()
    def hidden_states(self, batch: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        """Input (B, S) waveforms / (B, T) token ids / (B, 3, H, W) images -> (list of
        ``num_layers`` (B, T, C) fp32, output padding (B, T) or None)."""
        with autocast(self.precision, model_device(self.encoder)):
            states, padding = self.encoder.hidden_states(batch, padding_mask)
        return [s.float() for s in states], padding

    def batch(self, items: Sequence) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Raw items (see the class docstring) -> (input batch, input padding mask or None)."""
        if self.modality == "speech":
            return waveform_batch(items, self.normalize)
        if self.modality == "text":
            return _pad([self.encode_text(t) for t in items], self.dictionary.pad())
        from .data.images import load_eval_image

        return torch.stack([load_eval_image(path, self.image_size) for path in items]), None

    def encode_text(self, text: str) -> torch.Tensor:
        """A line of text -> token ids (T,) as pre-training saw them: <s> BPE pieces </s>."""
        if self._sp is None:
            import sentencepiece as spm

            if not self.sp_model or not os.path.isfile(self.sp_model):
                raise InputError("the checkpoint's sentencepiece model was not found; pass it (--sp-model)",
                                 path=self.sp_model or self.checkpoint)
            self._sp = spm.SentencePieceProcessor(model_file=self.sp_model)
        pieces = " ".join(self._sp.encode(text, out_type=str))
        ids = self.dictionary.encode_line(pieces, add_if_not_exist=False, append_eos=True).long()
        return torch.cat([torch.tensor([self.dictionary.bos()]), ids])

    def output_lengths(self, input_lengths: Sequence[int]) -> List[int]:
        """Output steps for inputs of these lengths (samples, tokens; images: CLS + patches);
        ``input_lengths`` of a ``batch``: its row lengths (``input_lengths(batch)``)."""
        if hasattr(self.encoder, "modality_encoders") or self.modality == "speech":  # 2.0, or the conv front end
            return self.encoder.output_lengths(torch.tensor(list(input_lengths))).tolist()
        if self.modality == "text":
            return list(input_lengths)
        return [self.encoder.patch_embed.num_patches + 1 for _ in input_lengths]


def input_lengths(batch: torch.Tensor, padding: Optional[torch.Tensor]) -> List[int]:
    """Each row's length in a ``Representations.batch`` (samples or tokens; 1 for an image)."""
    if batch.dim() == 4:
        return [1] * batch.size(0)
    return ((~padding).sum(-1) if padding is not None else torch.full((batch.size(0),), batch.size(1))).tolist()


def waveform_batch(waveforms: Sequence, normalize: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """16 kHz mono waveforms (1-D arrays or tensors) -> (B, S) float32 batch, each normalized alone
    when ``normalize`` (as the task's data pipeline does), and its padding mask (B, S) or None."""
    waves = [torch.as_tensor(np.asarray(w), dtype=torch.float32).flatten() for w in waveforms]
    if normalize:
        waves = [F.layer_norm(w, w.shape) for w in waves]
    return _pad(waves, 0.0)


def _pad(rows: Sequence[torch.Tensor], value) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """1-D tensors -> (B, max length) right-padded with ``value``, and the padding mask (or None)."""
    longest = max(len(r) for r in rows)
    out = rows[0].new_full((len(rows), longest), value)
    padding = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
        padding[i, len(r):] = True
    return out, (padding if padding.any() else None)


def load(checkpoint: str, sp_model: Optional[str] = None, data_dir: Optional[str] = None,
         random_init: bool = False, seed: int = 1, precision: str = "fp32") -> Representations:
    """A checkpoint of the package (pre-trained, data2vec 2.0 or fine-tuned: its encoder) or a
    released-format one -> ``Representations``. ``sp_model``: text's sentencepiece model
    (default: ``sentencepiece.bpe.model`` beside the data's ``dict.txt``). ``random_init``: the
    checkpoint's architecture with fresh weights (from ``seed``), the baseline of a probe.
    ``precision``: fp32, bf16 or fp16 (CUDA only) for the forward pass (autocast, fp32 weights);
    the features come out fp32."""
    check_precision(precision, "cuda" if torch.cuda.is_available() else "cpu")  # fp16: only with CUDA
    reps = _representations(checkpoint, sp_model, data_dir, random_init, seed)
    reps.precision = precision
    return reps


def _representations(checkpoint: str, sp_model: Optional[str], data_dir: Optional[str], random_init: bool,
                     seed: int) -> Representations:
    overrides = {"data": data_dir} if data_dir else None
    model, cfg, task = load_checkpoint(checkpoint, arg_overrides=overrides)
    if random_init:
        torch.manual_seed(seed)
        model = task.build_model(cfg.model)
    name = cfg.model._name
    if name == "wav2vec_ctc":
        return Representations(model.w2v_encoder.w2v_model, "speech", cfg.task.get("normalize", False),
                               checkpoint=checkpoint)
    if name == "data2vec_multi":
        return multi_representations(model, cfg, task, checkpoint, sp_model)
    if name in SPEECH_MODELS:
        return Representations(model, "speech", cfg.task.get("normalize", False), checkpoint=checkpoint)
    if name == "data2vec_audio_classification":
        return Representations(model.encoder, "speech", cfg.task.get("normalize", False), checkpoint=checkpoint)
    if name == "data2vec_text":
        return text_representations(model, cfg, task, checkpoint, sp_model)
    if name in ("data2vec_vision", "data2vec_image_classification"):
        encoder = model if name == "data2vec_vision" else model.encoder
        return Representations(encoder, "image", image_size=encoder.cfg.image_size, checkpoint=checkpoint)
    raise InputError(f"a {name} checkpoint: representations come from data2vec_audio, data2vec2_audio, "
                     "data2vec_multi, data2vec_text, data2vec_vision and the models fine-tuned from them",
                     path=checkpoint)


MULTI_MODALITIES = {"AUDIO": "speech", "IMAGE": "image", "TEXT": "text"}


def text_representations(model, cfg, task, checkpoint: str, sp_model: Optional[str]) -> Representations:
    """Representations of a text model (v1 or 2.0) with its dictionary and sentencepiece model
    (default: the one beside the data's ``dict.txt``)."""
    if sp_model is None:
        from .data.text import find_sp_model

        sp_model = find_sp_model(cfg.task.data)
    return Representations(model, "text", dictionary=task.source_dictionary, sp_model=sp_model, checkpoint=checkpoint)


def multi_representations(model, cfg, task, checkpoint: str, sp_model: Optional[str]) -> Representations:
    """Representations of a data2vec_multi (data2vec 2.0) checkpoint's one modality."""
    (name,) = model.modality_encoders.keys() if len(model.modality_encoders) == 1 else (None,)
    if name is None:
        raise InputError(f"a data2vec_multi checkpoint with {list(model.modality_encoders)}: representations need "
                         "a model of one modality (model.supported_modality)", path=checkpoint)
    modality = MULTI_MODALITIES[name]
    if modality == "text":
        return text_representations(model, cfg, task, checkpoint, sp_model)
    if modality == "image":
        return Representations(model, "image", image_size=model.modality_encoders[name].modality_cfg.input_size,
                               checkpoint=checkpoint)
    return Representations(model, "speech", cfg.task.get("normalize", False), checkpoint=checkpoint)
