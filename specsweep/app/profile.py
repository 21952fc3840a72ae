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
from specsweep.app import provenance
from specsweep.app.calls import decode_kwargs, generator
from specsweep.app.cell import Cell
from specsweep.app.replay import FORMAT, identity
from specsweep.data import prompts
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
    """profile.json of the cell's target and `drafts`, on the cell's device, dtype, switches and threads."""
    began = time.perf_counter()
    where = needs(inputs, cell.bench.max_new_tokens)
    models = load(drafts[0])
    costs = {"target": timing.forwards(models.target, where["contexts"])
             | timing.prefills(models.target, where["prefill_lengths"])}
    identities = {"target": identity(models.target, models.locations["target"])}
    overhead = calibration(cell, models, inputs)
    for name in drafts:
        models = load(name)
        identities[name] = identity(models.draft, models.locations["draft"])
        costs[name] = timing.forwards(models.draft, where["contexts"], ks=(1, 2)) \
            | timing.prefills(models.draft, where["prefill_lengths"])
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
    tokenizer = load(drafts[0]).tokenizer
    examples = prompts.read_examples(cell.dataset, tokenizer)
    inputs = [tokenizer(e.prompt, return_tensors="pt").input_ids.to(cell.device) for e in examples]
    found = profile_grid(cell, drafts, inputs, load)
    out = Path(spec.output_dir) / PROFILE_JSON
    record.write_json(out, found)
    return out
