"""Where a pre-training update's time goes, and how many FLOPs it does: installed into one
fairseq-hydra-train process by ``_train_once.py`` when ``D2V_BENCH_PROFILE`` is set, for this
package's models and for the references alike (everything is measured around fairseq's Trainer).

Stages (exclusive wall time: a stage nested in another is taken out of its parent):

* ``data``: the epoch iterator's ``__next__`` (collating, reading audio, masking in the dataset);
* ``front end``, ``masking``, ``student``, ``decoder/head``, ``teacher``, ``loss``: the model's
  own stages, found by name (this package's ``embed`` / ``mask`` / ``encode_student`` /
  ``make_targets`` / ``regress`` of v1, ``local_encoder`` / modality encoder / ``blocks`` /
  ``decoder`` / ``make_targets`` / ``regress`` of data2vec 2.0; the reference's
  ``feature_extractor`` / ``encoder`` / ``ema`` ... where its names differ); what the model's
  forward does outside them is ``forward other``;
* ``backward``, ``optimizer``, ``EMA step`` (the model's ``set_num_updates``, where both
  implementations step the teacher), ``trainer other`` (the rest of ``train_step``: zeroing,
  clipping, logging outputs), ``loop other`` (the training loop between updates).

FLOPs: one update (the third) is counted with the formulas of ``torch.utils.flop_counter``
(matmuls, convolutions, and the CPU attention kernel, whose formula is registered here:
4 B H T S D forward, twice that backward), forward and backward of the student, the teacher and
the decoder; the counted update is left out of the timing. At exit the process prints
``BENCH_PROFILE {json}``: seconds per stage over the timed updates, their count, FLOPs per update.
"""

import atexit
import functools
import json
import time

import torch

WARMUP = 2  # updates left out of the timing (allocations, first-call costs)
COUNTED = WARMUP + 1  # the update whose FLOPs are counted (not timed)

# the model's own methods -> stage (this package's v1 and 2.0 models)
MODEL_METHODS = {"embed": "front end", "mask": "masking", "encode_student": "student",
                 "run_shared_blocks": "student", "make_targets": "teacher", "regress": "loss"}
# submodules anywhere in the model, by attribute name -> stage (ours and the references')
SUBMODULES = {"local_encoder": "front end", "feature_extractor": "front end", "decoder": "decoder/head",
              "final_proj": "decoder/head"}


class StageTimer:
    """Exclusive wall time per stage, with a stack for nesting."""

    def __init__(self):
        self.seconds = {}
        self.stack = []  # [stage, start, child seconds]
        self.active = False

    def enter(self, stage):
        self.stack.append([stage, time.perf_counter(), 0.0])

    def leave(self):
        stage, start, children = self.stack.pop()
        spent = time.perf_counter() - start
        if self.active:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + spent - children
        if self.stack:
            self.stack[-1][2] += spent
        return spent

    def wrap(self, stage, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.enter(stage)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()
        return timed


TIMER = StageTimer()
STATE = {"updates": 0, "timed": 0, "flops": None, "last_end": None}


def _conv_backward_flops(grad_out, input, weight, bias_sizes=None, stride=None, padding=None, dilation=None,
                         transposed=False, output_padding=None, groups=1, output_mask=(True, True, True),
                         out_val=None, **kwargs):
    """FLOPs of a convolution's backward: the forward's (2 N prod(weight) prod(output spatial),
    grouped or not) once for the input's gradient and once for the weight's. torch's own formula
    counts a grouped convolution's backward as if it were not grouped (17x the forward for 16
    groups)."""
    spatial = input.shape[2:] if transposed else grad_out.shape[2:]
    forward = 2 * grad_out.shape[0] * weight.numel() * int(torch.tensor(spatial).prod()) if len(spatial) else 0
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _register_attention_flops():
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    aten = torch.ops.aten
    flop_registry[aten.convolution_backward] = _conv_backward_flops

    def count(q_shape, k_shape):
        *batch, t, d = q_shape
        heads = 1
        for n in batch:
            heads *= n
        return 4 * heads * t * k_shape[-2] * d

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
    def forward_flops(query, key, *args, out_shape=None, **kwargs):
        return count(query, key)

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def backward_flops(grad_out, query, key, *args, out_shape=None, **kwargs):
        return 2 * count(query, key)


def _instrument_model(model):
    """Wraps the model's stage methods and submodules (MODEL_METHODS, SUBMODULES) with the timer."""
    for name, stage in MODEL_METHODS.items():
        if callable(getattr(type(model), name, None)):
            setattr(model, name, TIMER.wrap(stage, getattr(model, name)))
    for encoder in getattr(model, "modality_encoders", {}).values():  # 2.0: masking, positions, prenet
        encoder.forward = TIMER.wrap("masking", encoder.forward)
    head = model.regression_head() if callable(getattr(type(model), "regression_head", None)) else None
    wrapped = set()
    for module in [head, *model.modules()]:
        targets = [("decoder/head", module)] if module is head and head is not None else \
            [(stage, module._modules.get(name)) for name, stage in SUBMODULES.items()] if module is not None else []
        for stage, target in targets:
            if isinstance(target, torch.nn.Module) and id(target) not in wrapped:
                wrapped.add(id(target))
                target.forward = TIMER.wrap(stage, target.forward)
    model.forward = TIMER.wrap("forward other", model.forward)
    model.set_num_updates = TIMER.wrap("EMA step", model.set_num_updates)


class FlopCount:
    """Sums the FLOPs of every op with a formula in ``torch.utils.flop_counter`` while active
    (a dispatch mode; torch's own FlopCounterMode also tracks modules, which fails on a teacher
    run under no_grad inside a training step)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        counter = self
        self.total = 0

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                formula = flop_registry.get(func._overloadpacket)
                if formula is not None:
                    counter.total += formula(*args, **kwargs, out_val=out)
                return out

        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def install():
    from fairseq.data import iterators
    from fairseq.optim import FairseqOptimizer
    from fairseq.trainer import Trainer

    _register_attention_flops()
    original_init, original_step = Trainer.__init__, Trainer.train_step

    def init(self, cfg, task, model, criterion, *args, **kwargs):
        _instrument_model(model)
        original_init(self, cfg, task, model, criterion, *args, **kwargs)

    def train_step(self, samples, *args, **kwargs):
        STATE["updates"] += 1
        now = time.perf_counter()
        if TIMER.active and STATE["last_end"] is not None:
            TIMER.seconds["loop other"] = TIMER.seconds.get("loop other", 0.0) + now - STATE["last_end"] - \
                STATE.pop("data_since_end", 0.0)
        TIMER.active = STATE["updates"] > WARMUP and STATE["updates"] != COUNTED
        if STATE["updates"] == COUNTED:
            params = list(self.optimizer.params)
            STATE["optimized"] = [len(params), sum(p.numel() for p in params)]
            with FlopCount() as counter:
                out = original_step(self, samples, *args, **kwargs)
            STATE["flops"] = counter.total
        else:
            TIMER.enter("trainer other")
            out = original_step(self, samples, *args, **kwargs)
            TIMER.leave()
            if TIMER.active:
                STATE["timed"] += 1
        STATE["last_end"] = time.perf_counter()
        return out

    original_next = iterators.CountingIterator.__next__

    def next_batch(self):
        start = time.perf_counter()
        try:
            return original_next(self)
        finally:
            spent = time.perf_counter() - start
            if TIMER.active:
                TIMER.seconds["data"] = TIMER.seconds.get("data", 0.0) + spent
                STATE["data_since_end"] = STATE.get("data_since_end", 0.0) + spent

    Trainer.__init__, Trainer.train_step = init, train_step
    iterators.CountingIterator.__next__ = next_batch
    FairseqOptimizer.backward = TIMER.wrap("backward", FairseqOptimizer.backward)
    FairseqOptimizer.step = TIMER.wrap("optimizer", FairseqOptimizer.step)
    atexit.register(lambda: print("BENCH_PROFILE " + json.dumps(
        {"seconds": TIMER.seconds, "updates": STATE["timed"], "flops_per_update": STATE["flops"],
         "optimized_tensors_and_values": STATE.get("optimized")}), flush=True))


def peak_flops(size: int = 2048, repeats: int = 5, device: str = "cpu", dtype: str = "float32") -> float:
    """The machine's matmul rate (FLOP/s): the best of ``repeats`` products of two ``size`` x
    ``size`` matrices of ``dtype`` on ``device``, with torch's threads as they are set."""
    kind = getattr(torch, dtype)
    a, b = torch.randn(size, size, device=device, dtype=kind), torch.randn(size, size, device=device, dtype=kind)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best
