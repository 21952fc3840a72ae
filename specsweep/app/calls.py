"""The calls a job times, each (prompt [1, S], call index) -> Generation: the method, its autoregressive baseline,
and the optional reference, A/A control and uninstrumented rows, all decoding under the same settings."""

from __future__ import annotations

from typing import Any

import torch

from specsweep.app.cell import Cell
from specsweep.decoding import METHODS, Generation
from specsweep.decoding.measure import Call
from specsweep.models import families, switches

BASELINE = "autoregressive"
# bench.reference: the reference row of Hayashizaki et al. 2024, table 2: autoregressive decoding with no
# optimisation (eager attention, float32, no quantisation, no compile, no KV cache), timed in the same job.
REFERENCE = "reference"
REFERENCE_SETTING = switches.Setting(attn="eager", dtype="float32")
# bench.control: the baseline a second time, interleaved like the rest, so that its "speedup" over itself (an A/A
# test) shows how far apart two identical calls time here: the noise floor of every speedup.
CONTROL_CALL = "control"
# bench.uninstrumented: the method again with no per-forward timing, interleaved, so that the ratio of the two shows
# what the timing costs (on CUDA it records events and never synchronises, so the ratio should be 1).
UNINSTRUMENTED = "uninstrumented"



def wanted(cell: Cell) -> set:
    """The models this cell's calls use (those of earlier jobs that it does not use can be released)."""
    needed = families.wanted(cell.family, cell.draft, cell.device, cell.settings, cell.method.uses_heads)
    if cell.bench.reference:
        needed |= families.wanted(cell.family, None, cell.device, {"target": REFERENCE_SETTING})
    return needed


def build(cell: Cell, models: families.Models) -> tuple[dict[str, Call], dict[str, int]]:
    """The named calls the bench settings ask for, and where CUDA peaks are read into (empty elsewhere)."""
    calls = {cell.method.name: method_call(cell, models), BASELINE: baseline_call(cell, models)}
    if cell.bench.reference:
        calls[REFERENCE] = reference_call(cell, models)
    if cell.bench.control:
        calls[CONTROL_CALL] = baseline_call(cell, models)
    if cell.bench.uninstrumented:
        calls[UNINSTRUMENTED] = method_call(cell, models, instrumented=False)
    peaks: dict[str, int] = {}
    if cell.device.type == "cuda":  # each call's peak allocation, reset before it: the method's and the baseline's
        calls = {name: peak_tracked(call, name, peaks, cell.device) for name, call in calls.items()}
    return calls, peaks


def peak_tracked(call: Call, name: str, peaks: dict[str, int], device: torch.device) -> Call:
    """`call`, with the device's peak allocation reset before it and read after it (outside its timed span)."""

    def tracked(prompt: torch.Tensor, index: int) -> Generation:
        torch.cuda.reset_peak_memory_stats(device)
        generation = call(prompt, index)
        peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated(device))
        return generation

    return tracked


def decode_kwargs(cell: Cell, models: families.Models) -> dict[str, Any]:
    """What the method and its baseline share, so both decode under the same settings."""
    cache = cell.spec.optimization.cache
    return dict(max_new_tokens=cell.bench.max_new_tokens, sampling=cell.sampling,
                use_cache=cell.spec.optimization.kv_cache, eos_token_id=models.target.generation_config.eos_token_id,
                **({"cache": cache} if cache != "dynamic" else {}))


def method_call(cell: Cell, models: families.Models, instrumented: bool = True) -> Call:
    """The configured method as (prompt, call index) -> Generation."""
    kwargs = decode_kwargs(cell, models) | dict(cell.spec.method.options) | ({} if instrumented
                                                                           else {"instrumented": False})
    if cell.method.uses_gamma:
        kwargs["gamma"] = cell.gamma
    if cell.method.uses_draft:
        kwargs["tokenizers"] = (models.tokenizer, models.draft_tokenizer)
    if cell.method.uses_heads:
        kwargs["heads"] = models.heads
    args = (models.target, models.draft) if cell.method.uses_draft else (models.target,)
    return lambda prompt, call: cell.method.decode(*args, prompt, generator=generator(cell, call), **kwargs)


def baseline_call(cell: Cell, models: families.Models) -> Call:
    decode, kwargs = METHODS[BASELINE].decode, decode_kwargs(cell, models)
    return lambda prompt, call: decode(models.target, prompt, generator=generator(cell, call), **kwargs)


def reference_call(cell: Cell, models: families.Models) -> Call:
    """The target loaded and run with no optimisation at all: eager attention, float32, no KV cache."""
    plain = families.load(cell.family, None, cell.device, {"target": REFERENCE_SETTING}).target
    decode, kwargs = METHODS[BASELINE].decode, decode_kwargs(cell, models) | {"use_cache": False, "cache": "dynamic"}
    return lambda prompt, call: decode(plain, prompt, generator=generator(cell, call), **kwargs)


def generator(cell: Cell, call: int) -> torch.Generator | None:
    """Sampling draws from a generator seeded per call, so a job is reproducible; greedy needs none."""
    if cell.sampling.greedy:
        return None
    return torch.Generator(cell.device).manual_seed(cell.spec.seed * 1_000_003 + call)
