"""What a job's timed runs give: the metrics of `specsweep.record` with paired bootstrap intervals (each call
paired with the baseline's call on the same prompt and repeat), memory per role, where outputs diverge, and the
per-prompt sample records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from specsweep import record
from specsweep.app.calls import BASELINE, CONTROL_CALL, REFERENCE, UNINSTRUMENTED, decode_kwargs
from specsweep.app.cell import Cell
from specsweep.data import prompts
from specsweep.decoding import DecodeStats, Generation, derive
from specsweep.decoding.divergence import divergence_margin, first_divergence
from specsweep.models import families, switches

Runs = dict[str, list[list[Generation]]]  # call name -> per prompt -> per repeat
Pair = tuple[float, int, float, int]  # one (prompt, repeat): seconds and new tokens of a call, then of the other's


def total(generations: list[list[Generation]]) -> DecodeStats:
    return sum((generation.stats for per_prompt in generations for generation in per_prompt), DecodeStats())


def running_figures(generations: list[list[Generation]]) -> dict[str, str]:
    stats = total(generations)
    figures = {"tok/s": f"{stats.new_tokens / stats.seconds:.0f}" if stats.seconds else "-"}
    if stats.drafted:
        figures["acc"] = f"{stats.accepted / stats.drafted:.2f}"
    return figures


def timing_metrics(runs: Runs, name: str, seed: int) -> dict[str, Any]:
    """The metrics of `specsweep.record` from the summed counts, and the timed ones with their bootstrap interval
    over the (prompt, repeat) calls, each call paired with the baseline's call on the same prompt and repeat."""
    method_total, baseline_total = total(runs[name]), total(runs[BASELINE])
    metrics = derive(method_total, baseline_total)
    paired = pairs(runs, name, BASELINE)
    metrics |= record.bootstrap("tokens_per_s", paired, tokens_per_s, seed)
    metrics |= record.bootstrap("speedup", paired, speedup, seed)
    metrics[f"{record.BASELINE_PREFIX}ms_per_token"] = baseline_total.ms_per_token
    metrics[f"{record.BASELINE_PREFIX}tokens_per_s"] = derive(baseline_total)["tokens_per_s"]
    if REFERENCE in runs:
        metrics |= record.bootstrap(f"{REFERENCE}_speedup", pairs(runs, name, REFERENCE), speedup, seed)
        metrics[f"{REFERENCE}_ms_per_token"] = total(runs[REFERENCE]).ms_per_token
    if CONTROL_CALL in runs:
        metrics |= record.bootstrap(f"{CONTROL_CALL}_speedup", pairs(runs, BASELINE, CONTROL_CALL), speedup, seed)
    if UNINSTRUMENTED in runs:
        metrics |= record.bootstrap("instrumentation_cost", pairs(runs, UNINSTRUMENTED, name), speedup, seed)
    metrics["accepted_per_position"] = method_total.accepted_per_position
    return metrics


def pairs(runs: Runs, name: str, over: str) -> list[Pair]:
    return [(mine.stats.seconds, mine.stats.new_tokens, theirs.stats.seconds, theirs.stats.new_tokens)
            for calls, others in zip(runs[name], runs[over], strict=True)
            for mine, theirs in zip(calls, others, strict=True)]


def tokens_per_s(units: Sequence[Pair], first: int = 0) -> float:
    """Of the first calls (`first=2`: of the others), from the summed totals: 1000 / their ms_per_token."""
    return sum(u[first + 1] for u in units) / sum(u[first] for u in units)


def speedup(units: Sequence[Pair]) -> float:
    """The other calls' ms per token over the first calls', from the summed totals."""
    return tokens_per_s(units) / tokens_per_s(units, first=2)


def memory_block(runs: Runs, name: str, loaded: dict[str, torch.nn.Module], peaks: dict[str, int]
                 ) -> dict[str, Any]:
    """What the method costs in memory, per role: weights as loaded and the KV cache at the job's longest sequence
    (from the cache's tensors); on CUDA, the peak allocation of the method's calls and of the baseline's. The extra
    bytes are the peaks' difference on CUDA, and elsewhere the draft's weights and KV cache."""
    def longest(role: str) -> int | None:
        sizes = [g.settings.get("cache_bytes", {}).get(role) for per_prompt in runs[name] for g in per_prompt]
        sizes = [size for size in sizes if size is not None]
        return max(sizes) if sizes else None

    block: dict[str, Any] = {role: {"weight_bytes": switches.weight_bytes(model), "kv_cache_bytes": longest(role)}
                             for role, model in loaded.items()}
    if peaks:
        block["peak_bytes"] = {"method": peaks.get(name), "baseline": peaks.get(BASELINE)}
        block["extra_bytes"] = peaks.get(name, 0) - peaks.get(BASELINE, 0)
    else:  # what the target alone does not hold: a draft model (weights and KV cache) or Medusa heads
        block["extra_bytes"] = sum((block.get(role, {}).get(kind) or 0) for role in ("draft", "heads")
                                   for kind in ("weight_bytes", "kv_cache_bytes"))
    return block


def divergences(cell: Cell, models: families.Models, inputs: list[torch.Tensor], runs: Runs
                ) -> list[tuple[int | None, float | None]]:
    """Per prompt, where the method's first-repeat output leaves the baseline's, and (greedy only: sampled outputs
    differ by design) the target's top-1 minus top-2 logit margin there, from an untimed autoregressive re-run."""
    kwargs = {key: value for key, value in decode_kwargs(cell, models).items() if key != "max_new_tokens"}
    found = []
    for i, prompt in enumerate(inputs):
        first = first_divergence(runs[cell.method.name][i][0].tokens.tolist(), runs[BASELINE][i][0].tokens.tolist())
        margin = None
        if first is not None and cell.sampling.greedy:
            margin = divergence_margin(models.target, prompt, first, **kwargs)
        found.append((first, margin))
    return found


def sample_records(examples: list[prompts.Example], runs: Runs, name: str, tokenizer,
                   diverged: list[tuple[int | None, float | None]]) -> list[record.Sample]:
    """One record per prompt: texts from the first repeat, timings and acceptance over all repeats."""
    records = []
    for i, example in enumerate(examples):
        method_runs, baseline_runs = runs[name][i], runs[BASELINE][i]
        stats = total([method_runs])
        records.append(record.Sample(
            id=example.id,
            prompt=example.prompt,
            reference=example.reference,
            output=tokenizer.decode(method_runs[0].tokens, skip_special_tokens=True),
            baseline_output=tokenizer.decode(baseline_runs[0].tokens, skip_special_tokens=True),
            tokens_match=method_runs[0].tokens.tolist() == baseline_runs[0].tokens.tolist(),
            first_divergence=diverged[i][0],
            divergence_margin=diverged[i][1],
            new_tokens=method_runs[0].stats.new_tokens,
            ms_per_token=[g.stats.ms_per_token for g in method_runs],
            baseline_ms_per_token=[g.stats.ms_per_token for g in baseline_runs],
            acceptance_rate=stats.accepted / stats.drafted if stats.drafted else None,
            accepted_per_position=stats.accepted_per_position,
            trace=method_runs[0].stats.trace,
            replay=None,
            quality={},
        ))
    return records
