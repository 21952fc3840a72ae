"""A latency profile: what each model's forwards cost on this device, in seconds, without decoding.

A k-token forward after `context` cached tokens (k = 1..8: a draft step, a two-token step, a (γ + 1)-token
verification), a prefill of a whole prompt, and the decoding loop's own work per round, per draft step and per
autoregressive token (from a few instrumented decodes: their wall time less their forwards'). Every figure is the
median of `repeats` timings after `warmup` untimed ones, with its interquartile range. The cache is
transformers' DynamicCache, cropped back to `context` between repeats, as the engine crops it after a rejection.

On CUDA each timing is a pair of events on the stream, read after the repeats (the host never waits between them);
elsewhere the host's clock around a synchronised forward.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import torch
from transformers import DynamicCache, PreTrainedModel

from specsweep.decoding.runner import keeps_kv_cache
from specsweep.decoding.stats import Generation
from specsweep.decoding.timing import synchronize

KS = tuple(range(1, 9))  # forwards of 1..8 tokens: γ + 1 for γ in 1..7, and a draft's two-token step


def _times_ms(device: torch.device, run: Callable[[], None], reset: Callable[[], None], repeats: int, warmup: int
              ) -> list[float]:
    """`run` timed `repeats` times after `warmup` untimed runs, `reset` (untimed) before each."""
    for _ in range(warmup):
        reset()
        run()
    marks = []
    for _ in range(repeats):
        reset()
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            marks.append((start, end))
        else:
            synchronize(device)
            began = time.perf_counter()
            run()
            synchronize(device)
            marks.append(1e3 * (time.perf_counter() - began))
    synchronize(device)
    return [m if isinstance(m, float) else m[0].elapsed_time(m[1]) for m in marks]


def _crop(cache: DynamicCache, length: int) -> None:
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # transformers' crop takes the tokens to drop, as `Runner.rollback` passes it


def summary(times: Sequence[float]) -> dict[str, float]:
    """Median and interquartile range of timings, in ms."""
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median": statistics.median(times), "q1": quartiles[0], "q3": quartiles[2]}


@torch.inference_mode()
def forwards(model: PreTrainedModel, contexts: Sequence[int], ks: Sequence[int] = KS, repeats: int = 7,
             warmup: int = 2) -> dict[str, object]:
    """ms of a k-token forward after each context: {"contexts", "forward_ms": {k: [median per context]},
    "spread": {k: [[q1, q3] per context]}}. Token ids are arbitrary: a forward's cost does not depend on them."""
    device = model.device
    longest = max(contexts) + max(ks)
    ids = torch.randint(0, model.config.vocab_size, (1, longest), device=device)
    medians: dict[int, list[float]] = {k: [] for k in ks}
    spread: dict[int, list[list[float]]] = {k: [] for k in ks}
    cached = keeps_kv_cache(model)
    for context in contexts:
        cache = DynamicCache()
        if context and cached:
            model(input_ids=ids[:, :context], past_key_values=cache, use_cache=True, logits_to_keep=1)
        for k in ks:
            # A model without a KV cache (an n-gram table) reads the whole sequence at every forward, as the engine
            # feeds it (`Runner.forward`).
            run = partial(model, input_ids=ids[:, context:context + k], past_key_values=cache, use_cache=True,
                          logits_to_keep=k) if cached else partial(model, input_ids=ids[:, :context + k],
                                                                   logits_to_keep=k)
            reset = partial(_crop, cache, context)
            found = summary(_times_ms(device, run, reset, repeats, warmup))
            medians[k].append(found["median"])
            spread[k].append([found["q1"], found["q3"]])
    return {"contexts": list(contexts), "forward_ms": medians, "spread": spread}


@torch.inference_mode()
def prefills(model: PreTrainedModel, lengths: Sequence[int], repeats: int = 5, warmup: int = 1) -> dict[str, object]:
    """ms of a first forward over a prompt of each length (a new cache): {"prefill_lengths", "prefill_ms"}."""
    device = model.device
    ids = torch.randint(0, model.config.vocab_size, (1, max(lengths)), device=device)
    found = []
    for length in lengths:
        run = partial(model, input_ids=ids[:, :length], past_key_values=None, use_cache=True, logits_to_keep=1)
        found.append(summary(_times_ms(device, run, lambda: None, repeats, warmup))["median"])
    return {"prefill_lengths": list(lengths), "prefill_ms": found}


def loop_overhead(speculative: Callable[[torch.Tensor, int], Generation],
                  autoregressive: Callable[[torch.Tensor], Generation], prompts: Sequence[torch.Tensor],
                  gammas: Sequence[int] = (1, 5), repeats: int = 2) -> dict[str, float]:
    """The loop's own ms per round, per draft step and per autoregressive token, from instrumented decodes: a
    call's wall time less its forwards' (`DecodeStats`), fitted over the calls as a·rounds + b·draft steps
    (least squares). `speculative(prompt, γ)` and `autoregressive(prompt)` decode one prompt."""
    rows, ar_ms, ar_tokens = [], 0.0, 0
    for prompt in prompts:
        autoregressive(prompt)  # the first call of each shape warms up
        for gamma in gammas:
            speculative(prompt, gamma)
        for _ in range(repeats):
            s = autoregressive(prompt).stats
            ar_ms += 1e3 * (s.seconds - s.target_seconds - s.prefill_seconds)
            ar_tokens += s.new_tokens
            for gamma in gammas:
                s = speculative(prompt, gamma).stats
                rest = 1e3 * (s.seconds - s.target_seconds - s.draft_seconds - s.prefill_seconds)
                rows.append((s.rounds, s.draft_forwards + 1, rest))
    # Normal equations of rest ≈ a·rounds + b·steps.
    rr = sum(r * r for r, _, _ in rows)
    rs = sum(r * d for r, d, _ in rows)
    ss = sum(d * d for _, d, _ in rows)
    ry = sum(r * y for r, _, y in rows)
    sy = sum(d * y for _, d, y in rows)
    det = rr * ss - rs * rs
    a, b = ((ry * ss - rs * sy) / det, (rr * sy - rs * ry) / det) if det else (ry / rr, 0.0)
    return {"round_ms": a, "draft_step_ms": b, "token_ms": ar_ms / ar_tokens if ar_tokens else 0.0}
