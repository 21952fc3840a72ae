"""The latency profile of a grid's models on this machine (`specsweep.decoding.profile`), at the contexts its cells
meet: profile.json, a file, so that one made on one machine prices traces made on any other."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from specsweep import record
from specsweep.app import cell as cells
from specsweep.app import job, provenance
from specsweep.app.calls import decode_kwargs, generator
from specsweep.app.cell import Cell
from specsweep.app.replay import FORMAT, identity
from specsweep.decoding import METHODS
from specsweep.decoding import profile as timing
from specsweep.models import families
from specsweep.study.forecast import PROFILE_JSON

POINTS = 5  # contexts (and prefill lengths) profiled between the shortest and the longest a grid meets
CALIBRATION_TOKENS = 48  # new tokens of each decode that measures the loop's own work


def spaced(low: int, high: int, points: int = POINTS) -> list[int]:
    """`points` integers from low to high, evenly spaced (fewer where the range is short)."""
    return sorted({round(low + (high - low) * i / (points - 1)) for i in range(points)}) if high > low else [low]


def needs(inputs: Sequence[torch.Tensor], max_new_tokens: int) -> dict[str, list[int]]:
    """The contexts a grid's forwards meet (from the shortest prompt to the longest sequence a verification reads)
    and the prefill lengths (the prompt, and the prompt with a first round's drafts)."""
    lengths = [prompt.shape[1] for prompt in inputs]
    return {"contexts": spaced(max(min(lengths) - 2, 0), max(lengths) + max_new_tokens + max(timing.KS)),
            "prefill_lengths": spaced(min(lengths), max(lengths) + max(timing.KS))}


def calibration(cell: Cell, models: families.Models, inputs: Sequence[torch.Tensor]) -> dict[str, float]:
    """The loop's own work per round, draft step and token, from a few instrumented decodes of the cell's first
    prompts under its sampling."""
    kwargs = decode_kwargs(cell, models) | {"max_new_tokens": min(CALIBRATION_TOKENS, cell.bench.max_new_tokens)}
    spec, ar = METHODS["speculative"].decode, METHODS["autoregressive"].decode

    def speculative(prompt: torch.Tensor, gamma: int):
        return spec(models.target, models.draft, prompt, gamma=gamma, generator=generator(cell, gamma), **kwargs)

    def autoregressive(prompt: torch.Tensor):
        return ar(models.target, prompt, generator=generator(cell, 0), **kwargs)

    return timing.loop_overhead(speculative, autoregressive, inputs[:2])


def profile_grid(cell: Cell, drafts: Sequence[str], inputs: Sequence[torch.Tensor],
                 load: Callable[[str], families.Models]) -> dict[str, Any]:
    """profile.json of the cell's target and `drafts`, on the cell's device, dtype, switches and threads: every
    forward timed interleaved with all the others (`timing.time_interleaved`), the ones a decode runs right after
    the other model's also timed that way, then the loop's own costs from instrumented decodes."""
    began = time.perf_counter()
    where = needs(inputs, cell.bench.max_new_tokens)
    contexts, lengths, verifications = where["contexts"], where["prefill_lengths"], timing.KS[1:]
    loaded = {name: load(name) for name in drafts}
    target = loaded[drafts[0]].target
    probes: dict[Any, timing.Probe] = {}

    def add(prefix: tuple, found: dict) -> None:
        probes.update({(*prefix, *key) if isinstance(key, tuple) else (*prefix, key): probe
                       for key, probe in found.items()})

    # Interleaved, each forward is preceded (untimed) by the one a decode runs before it: the same model's step, or,
    # where a decode alternates them, the other model's.
    add(("target",), timing.forward_probes(target, contexts, timing.KS, timing.other_step(target)))
    add(("target", "prefill"), timing.prefill_probes(target, lengths))
    for name, models in loaded.items():
        add((name,), timing.forward_probes(models.draft, contexts, (1, 2), timing.other_step(models.draft)))
        add((name, "prefill"), timing.prefill_probes(models.draft, lengths))
        # As a decode runs them: a round's first draft step after the target's verification, and the
        # verification after the draft's steps.
        add((name, "after"), timing.forward_probes(models.draft, contexts, (1, 2), timing.other_step(target)))
        add((name, "target after"), timing.forward_probes(target, contexts, verifications,
                                                            timing.other_step(models.draft)))
    found = timing.time_interleaved(probes, cell.device)

    def table(prefix: tuple, ks: Sequence[int]) -> dict[str, Any]:
        return timing.forward_table({key[len(prefix):]: v for key, v in found.items()
                                     if key[:len(prefix)] == prefix and len(key) == len(prefix) + 2}, contexts, ks)

    def prefill(prefix: tuple) -> dict[str, Any]:
        return {"prefill_lengths": list(lengths), "prefill_ms": [found[(*prefix, "prefill", n)]["median"]
                                                                 for n in lengths]}

    costs = {"target": {"contexts": contexts} | table(("target",), timing.KS) | prefill(("target",))}
    for name in drafts:
        costs[name] = {"contexts": contexts} | table((name,), (1, 2)) | prefill((name,)) | {
            "after_other_ms": table((name, "after"), (1, 2))["forward_ms"],
            "target_after_ms": table((name, "target after"), verifications)["forward_ms"]}
    identities = {"target": identity(target, loaded[drafts[0]].locations["target"])}
    identities |= {name: identity(models.draft, models.locations["draft"]) for name, models in loaded.items()}
    overhead = calibration(cell, loaded[drafts[0]], inputs)
    return {"format": FORMAT, "kind": "profile", "models": identities, "costs": costs, "overhead_ms": overhead,
            "device": str(cell.device), "threads": torch.get_num_threads(), "greedy": cell.sampling.greedy,
            "sampling.temperature": cell.spec.sampling.temperature, "max_new_tokens": cell.bench.max_new_tokens,
            "provenance": provenance.provenance(cell.device), "seconds": time.perf_counter() - began}


def model_drafts(cell: Cell) -> list[str]:
    """The family's drafts (every one is a model a speculative cell can load)."""
    return list(cell.family.drafts)


def loader(cell: Cell) -> Callable[[str], families.Models]:
    """draft name -> the cell's target with that draft, loaded as the cell's switches say."""
    def load(draft: str) -> families.Models:
        return families.load(cell.family, draft, cell.device, cell.settings)

    return load


def run(cfg: DictConfig) -> Path:
    """`python -m specsweep.profile`: profile.json of the composed cell's target and its family's drafts, at the
    contexts its dataset's prompts and budget meet, in the cell's output directory."""
    spec = cells.typed(cfg)
    cell = cells.check(spec)
    provenance.fit_threads(spec.bench.threads)
    load = loader(cell)
    drafts = model_drafts(cell)
    _, inputs = job.load_inputs(cell, load(drafts[0]))
    found = profile_grid(cell, drafts, inputs, load)
    out = Path(spec.output_dir) / PROFILE_JSON
    record.write_json(out, found)
    return out
