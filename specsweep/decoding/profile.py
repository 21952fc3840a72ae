"""A latency profile: what each model's forwards cost on this device, in seconds, without decoding.

A k-token forward after `context` cached tokens (k = 1..8: a draft step, a two-token step, a (γ + 1)-token
verification), a prefill of a whole prompt, and the decoding loop's own work per round, per draft step and per
autoregressive token (from a few instrumented decodes: their wall time less their forwards'). Every figure is the
median of `repeats` timings after `warmup` untimed ones, with its interquartile range, every figure timed once per
pass over all of them (`time_interleaved`). The cache is transformers' DynamicCache, cropped back to `context`
between repeats, as the engine crops it after a rejection. Forwards that a decode runs right after the other
model's (a round's first draft step, the verification) are also timed that way (`other_step`).

On CUDA each timing is a pair of events on the stream, read after the repeats (the host never waits between them);
elsewhere the host's clock around a synchronised forward.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel

from specsweep.decoding.runner import keeps_kv_cache
from specsweep.decoding.stats import Generation
from specsweep.decoding.timing import synchronize

KS = tuple(range(1, 9))  # forwards of 1..8 tokens: γ + 1 for γ in 1..7, and a draft's two-token step


Probe = tuple[Callable[[], None], Callable[[], None]]  # (the timed forward, what runs untimed right before it)


def time_interleaved(probes: dict[Any, Probe], device: torch.device, repeats: int = 9, warmup: int = 2,
                     seed: int = 0) -> dict[Any, dict[str, float]]:
    """Each probe's median and interquartile range in ms, over `repeats` passes after `warmup` untimed ones. A pass
    times every probe once, in a fresh random order: a host's speed drifts over seconds (this project's CPU host by
    half), and spread over the whole profile the drift falls on every figure alike instead of on a few."""
    order, times = random.Random(seed), {key: [] for key in probes}
    for done in range(warmup + repeats):
        marks = []
        for key in order.sample(list(probes), len(probes)):
            run, before = probes[key]
            before()
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                run()
                end.record()
                marks.append((key, (start, end)))
            else:
                synchronize(device)
                began = time.perf_counter()
                run()
                synchronize(device)
                marks.append((key, 1e3 * (time.perf_counter() - began)))
        synchronize(device)
        if done >= warmup:
            for key, mark in marks:
                times[key].append(mark if isinstance(mark, float) else mark[0].elapsed_time(mark[1]))
    return {key: summary(found) for key, found in times.items()}


def _crop(cache: DynamicCache, length: int) -> None:
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # transformers' crop takes the tokens to drop, as `Runner.rollback` passes it


def summary(times: Sequence[float]) -> dict[str, float]:
    """Median and interquartile range of timings, in ms."""
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median": statistics.median(times), "q1": quartiles[0], "q3": quartiles[2]}


def other_step(model: PreTrainedModel, context: int = 64) -> Callable[[], None]:
    """A one-token forward of `model` after `context` cached tokens, again and again: the other model's work
    between two forwards of a decode. A draft's first step of a round follows the target's verification, and the
    verification follows the draft's steps; on a CPU the other model's weights pass through the caches meanwhile
    (the embedded family's drafts ran 1.4-2x slower inside a decode than back to back)."""
    ids = torch.randint(0, model.config.vocab_size, (1, context + 1), device=model.device)
    cache = DynamicCache() if keeps_kv_cache(model) else None
    if cache is not None:
        with torch.inference_mode():
            model(input_ids=ids[:, :context], past_key_values=cache, use_cache=True, logits_to_keep=1)

    @torch.inference_mode()
    def step() -> None:
        if cache is None:
            model(input_ids=ids, logits_to_keep=1)
            return
        model(input_ids=ids[:, context:], past_key_values=cache, use_cache=True, logits_to_keep=1)
        _crop(cache, context)

    return step


def _nothing() -> None:
    return None


def forward_probes(model: PreTrainedModel, contexts: Sequence[int], ks: Sequence[int] = KS,
                   before: Callable[[], None] = _nothing) -> dict[tuple[int, int], Probe]:
    """(context, k) -> the probe of a k-token forward after `context` cached tokens (`before` runs untimed first,
    after the cache is cropped back to `context`). Token ids are arbitrary: a forward's cost does not depend on
    them. A model without a KV cache (an n-gram table) reads the whole sequence at every forward, as the engine
    feeds it (`Runner.forward`)."""
    ids = torch.randint(0, model.config.vocab_size, (1, max(contexts) + max(ks)), device=model.device)
    cached, probes = keeps_kv_cache(model), {}
    for context in contexts:
        cache = DynamicCache()
        if context and cached:
            with torch.inference_mode():
                model(input_ids=ids[:, :context], past_key_values=cache, use_cache=True, logits_to_keep=1)
        for k in ks:
            fed = dict(input_ids=ids[:, context:context + k], past_key_values=cache, use_cache=True) if cached \
                else dict(input_ids=ids[:, :context + k])
            probes[(context, k)] = (torch.inference_mode()(partial(model, logits_to_keep=k, **fed)),
                                    partial(_crop_before, cache, context, before))
    return probes


def _crop_before(cache: DynamicCache, length: int, before: Callable[[], None]) -> None:
    _crop(cache, length)
    before()


def prefill_probes(model: PreTrainedModel, lengths: Sequence[int]) -> dict[int, Probe]:
    """length -> the probe of a first forward over a prompt of that length (a new cache)."""
    ids = torch.randint(0, model.config.vocab_size, (1, max(lengths)), device=model.device)
    return {length: (torch.inference_mode()(partial(model, input_ids=ids[:, :length], past_key_values=None,
                                                      use_cache=True, logits_to_keep=1)), _nothing)
            for length in lengths}


def forward_table(found: dict[tuple[int, int], dict[str, float]], contexts: Sequence[int], ks: Sequence[int]
                  ) -> dict[str, object]:
    """{"forward_ms": {k: [median per context]}, "spread": {k: [[q1, q3] per context]}} of timed forward probes."""
    return {"forward_ms": {k: [found[(c, k)]["median"] for c in contexts] for k in ks},
            "spread": {k: [[found[(c, k)]["q1"], found[(c, k)]["q3"]] for c in contexts] for k in ks}}


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
