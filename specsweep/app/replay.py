"""Traces: what each draft does along the target's own output (`specsweep.decoding.replay`), kept per prompt, and
replayed (`specsweep.rounds`) into the rounds, forwards and tokens per round of any γ.

A speculative job traces its draft along its own baseline's first-repeat output, so nothing is decoded twice, and
records what the replay gives at its γ beside what it measured (`replay_*` in metrics.json; greedy: exact). The
planner traces every draft of a grid along one autoregressive decode (`trace_grid`) before measuring any cell.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from specsweep import rounds
from specsweep.app.calls import BASELINE, baseline_call
from specsweep.app.cell import Cell
from specsweep.app.paired import Runs
from specsweep.app.provenance import now
from specsweep.decoding.replay import acceptance_along, greedy_matches
from specsweep.models import families, switches

FORMAT = 1


def replays(cell: Cell) -> bool:
    """Whether the cell's rounds follow from its draft's trace: a method that conditions each draft on the ones
    before it, at a fixed lookahead (a stop rule reads the draft's confidence beyond its first miss)."""
    return cell.method.replays and not cell.spec.method.options.get("stop_below")


def trace(target: torch.nn.Module, draft: torch.nn.Module, prompt: torch.Tensor, output: torch.Tensor,
          cell: Cell) -> dict[str, Any]:
    """One prompt's trace of a draft along the target's output. prompt: [1, L], output: [N]."""
    sequence = torch.cat([prompt[0], output.to(prompt.device)])[None]  # [1, L + N]
    length = prompt.shape[1]
    found: dict[str, Any] = {"prompt_tokens": length, "new_tokens": output.numel()}
    if cell.sampling.greedy:
        vocab = target.get_output_embeddings().out_features
        found["matches"] = "".join("1" if m else "0" for m in greedy_matches(draft, sequence, length, vocab))
    else:
        found["acceptance"] = [round(a, 6) for a in acceptance_along(target, draft, sequence, length, cell.sampling)]
    return found


def replayed(entry: dict[str, Any], gamma: int, max_new_tokens: int) -> tuple[float, float, float]:
    """(rounds, draft forwards after the first, new tokens) of one call at γ: exact from matches, expected from
    acceptance."""
    _, count, found = rounds.replay(entry, gamma, max_new_tokens)
    if found is not None:
        counted = rounds.count(found, entry["new_tokens"])
        return counted.rounds, counted.draft_forwards, counted.new_tokens
    drafted = sum(rounds.lookahead(gamma, max_new_tokens, t) for t in range(entry["new_tokens"]))
    return count, float("nan") if drafted else 0.0, entry["new_tokens"]


def job_traces(cell: Cell, models: families.Models, inputs: Sequence[torch.Tensor], runs: Runs
               ) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """Per prompt, the draft's trace along the baseline's first-repeat output, and the replay's metrics at the
    cell's γ summed over every repeat as `counts` sums the measured ones (None, {} where the cell does not
    replay)."""
    if not replays(cell):
        return None, {}
    traced = [trace(models.target, models.draft, prompt, runs[BASELINE][i][0].tokens, cell)
              for i, prompt in enumerate(inputs)]
    repeats = cell.bench.repeats
    found = [replayed(entry, cell.gamma, cell.bench.max_new_tokens) for entry in traced]
    total_rounds, total_tokens = sum(f[0] for f in found), sum(f[2] for f in found)
    return traced, {
        "replay_tokens_per_round": total_tokens / total_rounds if total_rounds else None,
        "replay_target_forwards": repeats * (total_rounds - len(found)) if cell.sampling.greedy else None,
        "replay_draft_forwards": repeats * sum(f[1] for f in found) if cell.sampling.greedy else None,
    }


def identity(model: torch.nn.Module, location: str) -> dict[str, Any]:
    """What a profile and a trace must agree on about a model: its parameters and how it was loaded."""
    applied = switches.applied(model)
    return {"location": location, "params": switches.num_parameters(model), "dtype": applied["dtype"],
            "quantized": applied["quantized_modules"]}


def trace_grid(cell: Cell, drafts: Sequence[str], inputs: Sequence[torch.Tensor], load) -> dict[str, Any]:
    """Every draft's trace along one autoregressive decode of each prompt (the cell's sampling and budget): the
    traces.json of a planned sweep. `load(draft)` gives the family's Models with that draft."""
    began = time.perf_counter()
    models = load(drafts[0])
    decode = baseline_call(cell, models)
    outputs = [decode(prompt, i).tokens for i, prompt in enumerate(inputs)]
    decoded = time.perf_counter() - began
    entries: list[dict[str, Any]] = [{} for _ in inputs]
    identities = {"target": identity(models.target, models.locations["target"])}
    for name in drafts:
        models = load(name)
        identities[name] = identity(models.draft, models.locations["draft"])
        for i, prompt in enumerate(inputs):
            entries[i][name] = trace(models.target, models.draft, prompt, outputs[i], cell)
    prompts = [{"prompt_tokens": prompt.shape[1], "new_tokens": outputs[i].numel(),
                "drafts": {name: {k: v for k, v in entry.items() if k in ("matches", "acceptance")}
                           for name, entry in entries[i].items()}} for i, prompt in enumerate(inputs)]
    labels = {k: cell.axes.get(k) for k in ("model_family", "dataset", "method", "setting", "sampling.temperature")}
    return {"format": FORMAT, "kind": "traces", "models": identities, "labels": labels,
            "sampling": cell.axes.get("sampling.temperature"),
            "greedy": cell.sampling.greedy, "max_new_tokens": cell.bench.max_new_tokens, "prompts": prompts,
            "decode_seconds": decoded, "seconds": time.perf_counter() - began, "time": now()}
