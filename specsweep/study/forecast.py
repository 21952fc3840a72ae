"""The study predicted from traces and a latency profile: every (draft, γ) of a grid priced without decoding.

Traces (what each draft does along the target's own output, `specsweep.app.replay`) do not depend on the machine;
a profile (`specsweep.app.profile`) is one machine's costs. `predict` replays each prompt's rounds at every γ
(`specsweep.rounds`: greedy exact, sampling expected), prices them and the autoregressive baseline with the profile,
and gives each cell's speedup with a percentile bootstrap over prompts, the oracle bound (the best γ per round in
hindsight, greedy), and each cell's probability of being the best. Reads files only: no torch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specsweep import record, rounds
from specsweep.errors import ConfigError
from specsweep.theory import GAMMAS

TRACES_JSON, PROFILE_JSON, PREDICTED_CSV, PLAN_JSON = "traces.json", "profile.json", "predicted.csv", "plan.json"
COLUMNS = ["draft", "gamma", "replay_speedup", "replay_speedup_low", "replay_speedup_high", "replay_ms_per_token",
           "replay_baseline_ms_per_token", "replay_tokens_per_round", "oracle_speedup", "p_best", "draft_params",
           "decode_seconds", "estimate"]


def read_json(path: Path, kind: str) -> dict[str, Any]:
    """A traces or profile file, refused with one sentence when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} is not a readable {kind} file: {error}.") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise ConfigError(f"{path} is not a {kind} file (written by specsweep's {kind} step).")
    return data


def load_traces(source: Path) -> dict[str, Any]:
    """Traces from a traces.json, a sweep directory holding one (a planned sweep), or a sweep whose speculative
    jobs kept their traces in samples.jsonl."""
    source = Path(source)
    if source.is_file():
        return read_json(source, "traces")
    if (source / TRACES_JSON).is_file():
        return read_json(source / TRACES_JSON, "traces")
    if source.is_dir():
        return traces_of_sweep(source)
    raise ConfigError(f"{source} is neither a traces.json nor a sweep directory.")


def traces_of_sweep(sweep_dir: Path) -> dict[str, Any]:
    """The traces a sweep's finished speculative jobs kept (one job per draft suffices: along the same baseline,
    a draft's trace is the same at every γ)."""
    found: dict[str, Any] = {}
    prompts: list[dict[str, Any]] = []
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        status = record.read_status(job)
        if not status or status.get("status") != "done" or status.get("same_as"):
            continue
        metrics = json.loads((job / record.METRICS_JSON).read_text())
        samples = [json.loads(line) for line in (job / record.SAMPLES).read_text().splitlines() if line.strip()]
        if not samples or samples[0].get("replay") is None:
            continue
        draft, config = metrics["cell"]["draft"], metrics["config"]
        shared = {"greedy": config["sampling"]["temperature"] == 0, "max_new_tokens": config["bench"]["max_new_tokens"],
                  "sampling": config["sampling"]["temperature"], "target": metrics["params"]["target"]}
        if found and {k: found[k] for k in shared} != shared:
            raise ConfigError(f"{sweep_dir} holds traces of more than one sampling, budget or target; predict from "
                              f"one group's sweep (or its traces.json).")
        if not found:
            labels = {k: metrics["cell"].get(k) for k in ("model_family", "dataset", "method", "setting",
                                                           "sampling.temperature")}
            found = dict(shared) | {"kind": "traces", "format": 1, "labels": labels, "models": {
                "target": {"params": metrics["params"]["target"],
                           "dtype": metrics["applied"]["target"]["dtype"],
                           "quantized": metrics["applied"]["target"].get("quantized_modules", [])}}}
            prompts = [{"prompt_tokens": s["replay"]["prompt_tokens"], "new_tokens": s["replay"]["new_tokens"],
                        "drafts": {}} for s in samples]
        if draft in found["models"]:
            continue
        found["models"][draft] = {"params": metrics["params"]["draft"], "dtype": metrics["applied"]["draft"]["dtype"],
                                  "quantized": metrics["applied"]["draft"].get("quantized_modules", [])}
        for entry, sample in zip(prompts, samples, strict=True):
            entry["drafts"][draft] = {k: v for k, v in sample["replay"].items() if k in ("matches", "acceptance")}
    if not found:
        raise ConfigError(f"{sweep_dir} holds no traces: none of its finished jobs is a speculative cell that kept "
                          f"one (jobs of specsweep before traces, or other methods).")
    return found | {"prompts": prompts}


def check(traces: dict[str, Any], profile: dict[str, Any], profile_path: Path | str = "the profile") -> None:
    """The profile prices these traces: the same models, loaded the same way, profiled at every length a cell meets;
    one sentence naming the mismatch otherwise."""
    for name, model in traces["models"].items():
        mine = profile["models"].get(name)
        if mine is None:
            raise ConfigError(f"{profile_path} does not profile {'the target' if name == 'target' else 'draft ' + name}"
                              f"; profile the traces' models ({', '.join(traces['models'])}).")
        for key in ("params", "dtype", "quantized"):
            if key in model and key in mine and model[key] != mine[key]:
                role = "target" if name == "target" else f"draft {name}"
                raise ConfigError(f"{profile_path} profiles the {role} with {key}={mine[key]}, and the traces are of "
                                  f"one with {key}={model[key]}; profile the same models, loaded the same way.")
    if bool(profile.get("greedy")) != bool(traces.get("greedy")):
        raise ConfigError(f"{profile_path} was made at sampling.temperature={profile.get('sampling.temperature')}, "
                          f"and the traces at {traces.get('sampling')}; the loop's own costs differ between greedy "
                          f"and sampled decoding: profile at the traces' sampling.")
    lengths = [p["prompt_tokens"] for p in traces["prompts"]]
    context, prefill = max(lengths) + traces["max_new_tokens"] + max(GAMMAS), (min(lengths), max(lengths) + max(GAMMAS))
    for name in traces["models"]:
        costs = profile["costs"][name]
        if (max(costs["contexts"]) < context or min(costs["prefill_lengths"]) > prefill[0]
                or max(costs["prefill_lengths"]) < prefill[1]):
            raise ConfigError(f"{profile_path} profiles {name} at contexts up to {max(costs['contexts'])} and prefills "
                              f"of {min(costs['prefill_lengths'])}..{max(costs['prefill_lengths'])} tokens, and the "
                              f"traces need contexts up to {context} and prefills of {prefill[0]}..{prefill[1]}; "
                              f"profile with the traces' prompts and bench.max_new_tokens={traces['max_new_tokens']}.")


def costs_of(profile: dict[str, Any], draft: str | None) -> rounds.Costs:
    overhead, target = profile["overhead_ms"], profile["costs"]["target"]
    mine = profile["costs"][draft] if draft else {}
    verify = rounds.ModelCosts.from_json(target, mine["target_after_ms"]) if "target_after_ms" in mine else None
    return rounds.Costs(rounds.ModelCosts.from_json(target), rounds.ModelCosts.from_json(mine) if draft else None,
                        overhead["round_ms"], overhead["draft_step_ms"], overhead["token_ms"], verify)


def per_prompt(traces: dict[str, Any], profile: dict[str, Any], gammas: Sequence[int] = GAMMAS
               ) -> tuple[list[float], dict[tuple[str, int], list[float]], dict[str, list[float]],
                          dict[tuple[str, int], float]]:
    """Each prompt's predicted ms: the baseline's, each (draft, γ)'s, each draft's oracle (greedy), and each cell's
    tokens per round over all prompts."""
    budget = traces["max_new_tokens"]
    baseline_costs = costs_of(profile, None)
    baseline = [rounds.autoregressive_ms(p["new_tokens"], p["prompt_tokens"], baseline_costs)
                for p in traces["prompts"]]
    cells: dict[tuple[str, int], list[float]] = {}
    oracle: dict[str, list[float]] = {}
    per_round: dict[tuple[str, int], float] = {}
    drafts = [name for name in traces["models"] if name != "target"]
    for draft in drafts:
        costs = costs_of(profile, draft)
        for gamma in gammas:
            times, total_rounds, tokens = [], 0.0, 0
            for p in traces["prompts"]:
                ms, count, _ = rounds.replay(p["drafts"][draft] | {"prompt_tokens": p["prompt_tokens"]}, gamma,
                                             budget, costs)
                times.append(ms)
                total_rounds += count
                tokens += p["new_tokens"]
            cells[(draft, gamma)] = times
            per_round[(draft, gamma)] = tokens / total_rounds if total_rounds else float("nan")
        if traces.get("greedy"):
            oracle[draft] = [rounds.oracle_ms(rounds.matches_of(p["drafts"][draft]), budget,
                                              p["prompt_tokens"], costs) for p in traces["prompts"]]
    return baseline, cells, oracle, per_round


def resamples(n: int, seed: int = 0) -> np.ndarray:
    """RESAMPLES bootstrap resamples of n prompts, seeded: [RESAMPLES, n] prompt indices."""
    draw = random.Random(seed)
    return np.array([draw.choices(range(n), k=n) for _ in range(record.RESAMPLES)])


def resampled(baseline: Sequence[float], times: Sequence[float], index: np.ndarray) -> np.ndarray:
    """Σ baseline / Σ times (a speedup from summed times, as a job's is) on each resample: [RESAMPLES]."""
    return np.asarray(baseline)[index].sum(1) / np.asarray(times)[index].sum(1)


def interval(values: np.ndarray) -> tuple[float, float]:
    """The percentile interval at CONFIDENCE of bootstrap values."""
    tail = (1 - record.CONFIDENCE) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def best_probability(draws: dict[Any, np.ndarray]) -> dict[Any, float]:
    """Each cell's share of the resamples in which its speedup is the highest (all on the same resampled prompts)."""
    cells = list(draws)
    wins = np.bincount(np.stack([draws[c] for c in cells]).argmax(0), minlength=len(cells))
    return {cell: float(count) / record.RESAMPLES for cell, count in zip(cells, wins, strict=True)}


def predict(traces: dict[str, Any], profile: dict[str, Any], gammas: Sequence[int] = GAMMAS, seed: int = 0,
            repeats: int = 1, calls: int = 2, profile_path: Path | str = "the profile") -> pd.DataFrame:
    """A row per (draft, γ) (COLUMNS): predicted speedup with its interval, ms per token of the cell and of its
    baseline, tokens per round, the draft's oracle speedup, the probability the cell is the grid's best, and the
    seconds a job measuring it would decode for (`repeats` passes, the method and `calls` - 1 baseline calls)."""
    check(traces, profile, profile_path)
    baseline, cells, oracle, per_round = per_prompt(traces, profile, gammas)
    tokens = sum(p["new_tokens"] for p in traces["prompts"])
    index = resamples(len(baseline), seed)
    draws = {cell: resampled(baseline, times, index) for cell, times in cells.items()}
    best = best_probability(draws)
    rows = []
    for (draft, gamma), times in cells.items():
        low, high = interval(draws[(draft, gamma)])
        rows.append({"draft": draft, "gamma": gamma, "replay_speedup": sum(baseline) / sum(times),
                     "replay_speedup_low": low, "replay_speedup_high": high,
                     "replay_ms_per_token": sum(times) / tokens,
                     "replay_baseline_ms_per_token": sum(baseline) / tokens,
                     "replay_tokens_per_round": per_round[(draft, gamma)],
                     "oracle_speedup": sum(baseline) / sum(oracle[draft]) if draft in oracle else float("nan"),
                     "p_best": best[(draft, gamma)], "draft_params": traces["models"][draft].get("params"),
                     "decode_seconds": repeats * (sum(times) + (calls - 1) * sum(baseline)) / 1e3,
                     "estimate": not traces.get("greedy")})
    return pd.DataFrame(rows, columns=COLUMNS)


# What a planned sweep's plan.json adds to each of its rows (by draft and γ).
PLAN_COLUMNS = ("replay_speedup", "replay_speedup_low", "replay_speedup_high", "replay_ms_per_token",
                "replay_tokens_per_round", "oracle_speedup", "p_best")


def join(rows: list[dict[str, Any]], cells: dict[tuple[str, int], dict[str, Any]], sweep: str | None = None
         ) -> list[dict[str, Any]]:
    """Predicted columns (PLAN_COLUMNS) beside the rows of the same (draft, γ) (of `sweep` only, where given). A
    job's own replay of τ (from its own trace) stays; the prediction's fills in where the job has none."""
    for row in rows:
        found = cell_of(row, cells, sweep)
        if found is not None:
            row |= {k: found[k] for k in PLAN_COLUMNS if k in found and (k not in row or pd.isna(row[k]))}
    return rows


def cell_of(row: dict[str, Any], cells: dict[tuple[str, int], dict[str, Any]], sweep: str | None
            ) -> dict[str, Any] | None:
    """The entry of `cells` for a row's (draft, γ), where the row is of `sweep` (any, when None) and has a γ."""
    if (sweep is not None and row.get("sweep") != sweep) or row.get("gamma") is None or pd.isna(row["gamma"]):
        return None
    return cells.get((str(row.get("draft")), int(row["gamma"])))


def by_cell(frame: pd.DataFrame | list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    records = frame.to_dict("records") if isinstance(frame, pd.DataFrame) else frame
    return {(str(c["draft"]), int(c["gamma"])): c for c in records}


def attach(rows: list[dict[str, Any]], sweep_dir: Path) -> list[dict[str, Any]]:
    """A sweep's predictions beside its rows. A planned sweep's plan.json: its columns by (draft, γ), the share of
    the full grid's decode time it spent (`plan_fraction`), and for a cell it skipped, status `skipped` and why. A
    sweep that holds a profile.json (`specsweep-profile hydra.run.dir=<sweep>`): its jobs' traces priced by it."""
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / PLAN_JSON).is_file():
        plan = json.loads((sweep_dir / PLAN_JSON).read_text())
        cells = by_cell(plan["cells"])
        rows = join(rows, cells, str(sweep_dir))
        for row in rows:
            found = cell_of(row, cells, str(sweep_dir))
            if found is None:
                continue
            row["plan_fraction"] = plan.get("fraction_of_grid")
            if found.get("skipped") and row.get("status") == "missing":
                row |= {"status": "skipped", "error": f"skipped by the planner: {found['skipped']}"}
        return rows
    if (sweep_dir / PROFILE_JSON).is_file():
        profile = read_json(sweep_dir / PROFILE_JSON, "profile")
        return join(rows, by_cell(predict(load_traces(sweep_dir), profile)), str(sweep_dir))
    return rows


def predicted_rows(prediction: pd.DataFrame, traces: dict[str, Any], profile: dict[str, Any]) -> pd.DataFrame:
    """A prediction as study rows (every one marked `predicted`), in the group of the profiled machine."""
    provenance = profile.get("provenance", {})
    hardware = f"{provenance.get('gpu') or provenance.get('cpu')}, {profile.get('threads')} threads (predicted)"
    labels = traces.get("labels", {})
    frame = prediction.assign(
        status="done", predicted=True, hardware=hardware, threads=profile.get("threads"),
        speedup=prediction["replay_speedup"], speedup_low=prediction["replay_speedup_low"],
        speedup_high=prediction["replay_speedup_high"], ms_per_token=prediction["replay_ms_per_token"],
        baseline_ms_per_token=prediction["replay_baseline_ms_per_token"],
        tokens_per_round=prediction["replay_tokens_per_round"], target_params=traces["models"]["target"]["params"],
        key=[f"predicted:{d}:{g}" for d, g in zip(prediction["draft"], prediction["gamma"], strict=True)],
        sweep="(predicted)", job=[f"{d} γ={g}" for d, g in zip(prediction["draft"], prediction["gamma"], strict=True)])
    for name, value in labels.items():
        frame[name] = value
    return frame
