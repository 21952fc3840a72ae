"""The planner (`hydra/sweeper=planned`): predict a draft x γ grid from traces and a latency profile, then measure
only the cells that can still change the optimum.

1. `prepare`: one autoregressive decode of the grid's prompts, every draft traced along it, and the models profiled
   on this machine: traces.json and profile.json in the sweep directory (kept, so a resumed sweep reuses them).
2. `forecast.predict` prices every cell, with a bootstrap interval over prompts.
3. `decide`, after each measured cell: the next cell is the unmeasured one of highest predicted speedup; the plan
   stops when, on the same bootstrap resamples of the prompts, no cell left can reach the measured best (the upper
   bound of its predicted speedup over the best's is below 1) and the prediction held on the last cell measured.
   A cell the prediction missed (measured / predicted lacks 1 in its interval, and they differ by more than 5%) is
   reported, every prediction is scaled by the worst under-prediction met so far, and measuring goes on.
4. plan.json: each cell's prediction, measurement or reason it was skipped, its probability of being the best, and
   the share of the full grid's decode time spent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specsweep import record, schema
from specsweep.app import cell as cells
from specsweep.app import job, provenance, replay
from specsweep.app import profile as profiling
from specsweep.app.cell import Cell
from specsweep.errors import ConfigError
from specsweep.study import forecast

log = logging.getLogger("specsweep")
HELD = 0.05  # a measured speedup within this of the prediction holds, whatever the intervals say
Grid = dict[tuple[str, int], int]  # (draft, γ) -> the cell's position in the sweep


def grid_of(specs: Sequence[schema.Config | None]) -> tuple[Cell, Grid]:
    """The grid's shared cell (its first) and each (draft, γ)'s position, or one sentence on why the planner cannot
    plan it: a method without drafts or whose rounds do not replay, or cells that differ in more than draft and γ."""
    checked = [(i, cells.check(spec)) for i, spec in enumerate(specs) if spec is not None]
    first = checked[0][1]
    if not first.method.uses_draft:
        raise ConfigError(f"hydra/sweeper=planned plans a grid of drafts and lookaheads, and "
                          f"method={first.method.name} has no draft; sweep it with the default sweeper.")
    if not replay.replays(first):
        raise ConfigError(f"hydra/sweeper=planned cannot predict method={first.method.name} with these options: its "
                          f"rounds do not follow from the draft's choices (it needs method=speculative at a fixed "
                          f"lookahead, method.options.stop_below=0).")
    if not first.spec.optimization.kv_cache or first.spec.optimization.cache != "dynamic":
        raise ConfigError("hydra/sweeper=planned profiles forwards on a dynamic KV cache, and this grid sets "
                          "optimization.kv_cache=false or optimization.cache=static; plan it on the default cache.")

    def rest(cell: Cell) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(cell.spec).items() if k not in ("draft", "gamma", "output_dir")}

    for _, other in checked:
        if rest(other) != rest(first):
            differs = sorted(k for k in rest(first) if rest(first)[k] != rest(other)[k])
            raise ConfigError(f"hydra/sweeper=planned plans one grid of draft and gamma, and this sweep also varies "
                              f"{', '.join(differs)}; plan each value apart (one sweep each).")
    return first, {(cell.draft, cell.gamma): i for i, cell in checked}


def prepare(first: Cell, drafts: Sequence[str], sweep_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """traces.json and profile.json of the grid, made once (a resumed sweep reads them back)."""
    paths = sweep_dir / forecast.TRACES_JSON, sweep_dir / forecast.PROFILE_JSON
    if all(path.is_file() for path in paths):
        return forecast.read_json(paths[0], "traces"), forecast.read_json(paths[1], "profile")
    provenance.fit_threads(first.spec.bench.threads)
    torch.manual_seed(first.spec.seed)
    load = profiling.loader(first)
    _, inputs = job.load_inputs(first, load(drafts[0]))
    log.info("planner: tracing %d drafts along the target's output on %d prompts", len(drafts), len(inputs))
    traces = replay.trace_grid(first, drafts, inputs, load)
    record.write_json(paths[0], traces)
    log.info("planner: profiling the target and %d drafts", len(drafts))
    record.write_json(paths[1], profiling.profile_grid(first, drafts, inputs, load))
    return traces, forecast.read_json(paths[1], "profile")


@dataclass
class Measured:
    speedup: float
    low: float
    high: float
    decode_seconds: float
    per_prompt: tuple[list[float], list[float]]  # (baseline ms, the cell's ms) per prompt


def measured_cell(job_dir: Path, calls: int) -> Measured:
    metrics = json.loads((job_dir / record.METRICS_JSON).read_text())
    samples = [json.loads(line) for line in (job_dir / record.SAMPLES).read_text().splitlines() if line.strip()]
    m = metrics["metrics"]
    decode = metrics["counts"]["seconds"] + (calls - 1) * metrics["baseline_counts"]["seconds"]
    per_prompt = ([sum(s["baseline_ms_per_token"]) * s["new_tokens"] for s in samples],
                  [sum(s["ms_per_token"]) * s["new_tokens"] for s in samples])
    return Measured(m["speedup"], m["speedup_low"], m["speedup_high"], decode, per_prompt)


Draws = dict[tuple[str, int], np.ndarray]  # cell -> its speedup on each bootstrap resample of the prompts [R]


def predicted_draws(traces: dict[str, Any], profile: dict[str, Any], cells: Sequence[tuple[str, int]],
                    seed: int = 0) -> Draws:
    """Every cell's predicted speedup on each bootstrap resample of the prompts (`resamples(seed)`)."""
    index = forecast.resamples(len(traces["prompts"]), seed)
    baseline, times, _, _ = forecast.per_prompt(traces, profile, sorted({g for _, g in cells}))
    return {c: forecast.resampled(baseline, times[c], index) for c in cells}


def measured_draws(measured: dict[tuple[str, int], Measured], prompts: int, seed: int = 0) -> Draws:
    """Every measured cell's speedup on the same resamples as `predicted_draws`: cells compared on the same resample
    are compared on the same prompts."""
    index = forecast.resamples(prompts, seed)
    return {c: forecast.resampled(*m.per_prompt, index) for c, m in measured.items()}


def held(cell: tuple[str, int], predicted: dict[str, float], found: Measured, guessed: Draws, seen: Draws) -> bool:
    """The prediction held on a measured cell: measured / predicted on the same resampled prompts has 1 in its
    interval, or the two figures are within HELD of each other."""
    low, high = forecast.interval(seen[cell] / guessed[cell])
    return low <= 1 <= high or abs(found.speedup / predicted["replay_speedup"] - 1) <= HELD


@dataclass
class Decision:
    next: tuple[str, int] | None  # the cell to measure next; None: stop
    reasons: dict[tuple[str, int], str] = field(default_factory=dict)  # skipped cell -> why
    misses: list[str] = field(default_factory=list)  # one sentence per measured cell the prediction missed
    scale: float = 1.0  # the worst under-prediction so far, which scales every upper bound


def decide(predicted: dict[tuple[str, int], dict[str, float]], measured: dict[tuple[str, int], Measured],
           order: Sequence[tuple[str, int]], guessed: Draws, seen: Draws) -> Decision:
    """The next cell to measure, or why every cell left can be skipped. `order`: the cells measured, in order;
    `guessed`, `seen`: predicted and measured speedups on the same resampled prompts (`predicted_draws`,
    `measured_draws`).

    A cell left is skipped when, on the same resampled prompts, its predicted speedup over the measured best's
    (scaled by the worst under-prediction so far) has an upper bound below 1: a paired comparison, since every
    cell's speedup moves with the prompts drawn."""
    misses = [f"{c[0]} γ={c[1]}: measured {found.speedup:.2f}× [{found.low:.2f}, {found.high:.2f}], predicted "
              f"{predicted[c]['replay_speedup']:.2f}× [{predicted[c]['replay_speedup_low']:.2f}, "
              f"{predicted[c]['replay_speedup_high']:.2f}]"
              for c, found in measured.items() if not held(c, predicted[c], found, guessed, seen)]
    scale = max([1.0] + [found.speedup / predicted[c]["replay_speedup"] for c, found in measured.items()])
    left = sorted((c for c in predicted if c not in measured), key=lambda c: -predicted[c]["replay_speedup"])
    if not measured:
        return Decision(left[0] if left else None, {}, misses, scale)
    best = max(measured, key=lambda c: measured[c].speedup)
    upper = {c: forecast.interval(scale * guessed[c] / seen[best])[1] for c in left}
    reachable = [c for c in left if upper[c] >= 1]
    if reachable:
        return Decision(reachable[0], {}, misses, scale)
    last = order[-1] if order else best
    if not held(last, predicted[last], measured[last], guessed, seen) and left:
        return Decision(left[0], {}, misses, scale)
    reasons = {c: (f"predicted {predicted[c]['replay_speedup']:.2f}× [{predicted[c]['replay_speedup_low']:.2f}, "
                   f"{predicted[c]['replay_speedup_high']:.2f}]; on the same prompts it reaches at most "
                   f"{upper[c]:.2f} of the measured best, {best[0]} γ={best[1]} ({measured[best].speedup:.2f}×)"
                   + (f", with every prediction scaled by {scale:.2f}, the worst under-prediction measured"
                      if scale > 1 else ""))
               for c in left}
    return Decision(None, reasons, misses, scale)


def summary(predicted: dict[tuple[str, int], dict[str, float]], measured: dict[tuple[str, int], Measured],
            order: Sequence[tuple[str, int]], decision: Decision, traces: dict[str, Any], profile: dict[str, Any],
            guessed: Draws, seen: Draws) -> dict[str, Any]:
    """plan.json: the plan's cells, its stop, each cell's probability of being the best, and the time it spent."""
    best = forecast.best_probability({c: seen.get(c, guessed[c]) for c in predicted})
    spent_cells = sum(m.decode_seconds for m in measured.values())
    prepared = traces.get("seconds", 0.0) + profile.get("seconds", 0.0)
    full = sum(measured[c].decode_seconds if c in measured else predicted[c]["decode_seconds"] for c in predicted)
    shown = [k for k in forecast.COLUMNS if k not in ("draft", "gamma")]
    rows = [{"draft": d, "gamma": g, **{k: predicted[(d, g)][k] for k in shown},
             "p_best": best[(d, g)], "measured": (d, g) in measured,
             "speedup": measured[(d, g)].speedup if (d, g) in measured else None,
             "held": held((d, g), predicted[(d, g)], measured[(d, g)], guessed, seen) if (d, g) in measured
             else None,
             "skipped": decision.reasons.get((d, g))} for d, g in predicted]
    return {"kind": "plan", "cells": rows, "order": [list(c) for c in order], "misses": decision.misses,
            "scale": decision.scale, "stopped": decision.next is None, "prepare_seconds": prepared,
            "measured_decode_seconds": spent_cells, "grid_decode_seconds": full,
            "fraction_of_grid": (prepared + spent_cells) / full if full else None, "time": provenance.now()}


def predictions(traces: dict[str, Any], profile: dict[str, Any], grid: Grid, calls: int, repeats: int
                ) -> dict[tuple[str, int], dict[str, float]]:
    frame = forecast.predict(traces, profile, sorted({g for _, g in grid}), repeats=repeats, calls=calls)
    frame = frame[[(d, g) in grid for d, g in zip(frame["draft"], frame["gamma"], strict=True)]]
    return {(row["draft"], int(row["gamma"])): row for row in frame.to_dict("records")}


def measured_order(sweep_dir: Path) -> list[tuple[str, int]]:
    """The cells an earlier run of this plan measured, in the order it measured them (from its plan.json)."""
    path = sweep_dir / forecast.PLAN_JSON
    if not path.is_file():
        return []
    return [(draft, int(gamma)) for draft, gamma in json.loads(path.read_text()).get("order", [])]
