"""The results schema: what a job writes (status.json, metrics.json, samples.jsonl), every metric declared once
with its definition and direction, and the few helpers that read and write those files.

Standard library only, so that the study (which reads these files) runs where torch is not installed. The
metric names and definitions are those of Leviathan et al. 2023 and Chen et al. 2023 where the papers name
them; the README's list of metrics is checked against `METRICS` by a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

STATUS, METRICS_JSON, SAMPLES = "status.json", "metrics.json", "samples.jsonl"
BASELINE_PREFIX = "baseline_"  # the same metric of the autoregressive baseline measured in the same job
# A timed metric's confidence interval: a percentile bootstrap over the (prompt, repeat) calls of a job.
INTERVAL_SUFFIXES = ("_low", "_high")
CONFIDENCE, RESAMPLES = 0.95, 2000


@dataclass(frozen=True)
class Metric:
    name: str
    definition: str
    higher_is_better: bool | None  # None: a count or a setting, not a score
    interval: bool = False  # also `<name>_low`, `<name>_high`: its 95% bootstrap interval over prompts x repeats
    baseline: bool = False  # also `baseline_<name>`: the autoregressive baseline's value in the same job


def _registry(*metrics: Metric) -> dict[str, Metric]:
    return {metric.name: metric for metric in metrics}


METRICS: dict[str, Metric] = _registry(
    Metric("speedup", "autoregressive ms_per_token / the method's, same prompts, interleaved", True, interval=True),
    Metric("tokens_per_s", "new tokens / wall time of generation: 1000 / ms_per_token", True, interval=True,
           baseline=True),
    Metric("ms_per_token", "wall time of generation / new tokens, over all prompts and repeats", False,
           baseline=True),
    Metric("control_speedup", "autoregressive ms_per_token / a second autoregressive run's, interleaved in the same "
           "job (the A/A control, bench.control): its interval is the noise floor of speedup", None, interval=True),
    Metric("instrumentation_cost", "the method's ms_per_token with per-forward timing / without it, interleaved "
           "(bench.uninstrumented): 1 when the timing costs nothing", False, interval=True),
    Metric("acceptance_rate", "accepted / drafted draft tokens", True),
    Metric("alpha", "accepted / (accepted + rejections): the MLE of Leviathan et al.'s per-token acceptance α", True),
    Metric("tokens_per_round", "new tokens / target verification forwards (τ, bonus tokens included)", True),
    Metric("replay_tokens_per_round", "tokens_per_round replayed from the draft's choices along the baseline's own "
           "output (specsweep.rounds): greedy, exact (equal to tokens_per_round unless a near-tie); sampling, "
           "expected from Σ min(p, q) per position, an estimate", True),
    Metric("replay_target_forwards", "greedy: target forwards after the first, replayed, over every repeat (equal "
           "to counts.target_forwards)", None),
    Metric("replay_draft_forwards", "greedy: draft forwards after the first, replayed, over every repeat (equal to "
           "counts.draft_forwards)", None),
    Metric("replay_speedup", "speedup predicted without decoding: the cell's replayed rounds and its baseline priced "
           "by a latency profile (specsweep.study.forecast); interval: bootstrap over prompts", True, interval=True),
    Metric("replay_ms_per_token", "ms_per_token predicted from the replayed rounds and the profile", False),
    Metric("oracle_speedup", "greedy: the speedup of the best γ chosen per round in hindsight (the replayed matches "
           "and the profile): the ceiling of any adaptive lookahead with this draft", True),
    Metric("p_best", "share of bootstrap resamples of prompts in which the cell has the grid's highest speedup "
           "(measured where measured, predicted elsewhere)", None),
    Metric("drafts_per_round", "drafted tokens / rounds: γ for a fixed lookahead, less where it adapts (stop_below, "
           "transformers' schedules) or the budget ends", None),
    Metric("accepted_per_position", "accepted tokens at draft positions 1..γ", None),
    Metric("c", "draft ms per forward / target ms per one-token step (Leviathan et al.'s cost coefficient)", False),
    Metric("verify_cost", "target ms per (γ+1)-token verification / target ms per one-token step", False),
    Metric("predicted_speedup", "Leviathan et al.'s S = (1 − α^(γ+1)) / ((1 − α)(γc + 1)) from the measured α and c",
           True),
    Metric("gamma_star", "the γ in 1..7 that maximises S for the measured α and c", None),
    Metric("draft_ms_per_forward", "draft time per forward after the first", False),
    Metric("target_ms_per_forward", "target time per forward after the first", False),
    Metric("overhead_fraction", "share of wall time outside model forwards (sampling, acceptance, bookkeeping)",
           False),
    Metric("reference_speedup", "unoptimised autoregressive ms_per_token / the method's (bench.reference)", True,
           interval=True),
    Metric("reference_ms_per_token", "ms_per_token of the unoptimised autoregressive reference (bench.reference)",
           False),
    Metric("compile_seconds", "torch.compile time spent in the warm-up, never in latency", False),
    Metric("compile_seconds_timed", "torch.compile time spent inside the timed calls (0 when warm-up covered it)",
           False),
    Metric("extra_memory_bytes", "what the method adds to autoregressive decoding's memory: on CUDA the peak "
           "allocation of its calls minus the baseline's; elsewhere the draft's weights and KV cache", False),
    Metric("exact_match", "fraction of outputs identical to the autoregressive output", True),
    Metric("divergence_margin", "greedy: the largest top-1 − top-2 target logit margin where an output first leaves "
           "the autoregressive output (null when none does); within the dtype's rounding, a near-tie", None),
    Metric("rouge1", "ROUGE-1 F-measure against the dataset's reference", True, baseline=True),
    Metric("rouge2", "ROUGE-2 F-measure against the dataset's reference", True, baseline=True),
    Metric("rougeL", "ROUGE-L F-measure against the dataset's reference", True, baseline=True),
    Metric("pass_at_1", "fraction of completions that pass their unit tests (opt-in: dataset.execute_code)", True,
           baseline=True),
)


def metric_keys() -> list[str]:
    """Every key metrics.json's `metrics` may hold: each metric, its interval and its baseline variant."""
    keys = []
    for metric in METRICS.values():
        keys.append(metric.name)
        keys += [metric.name + suffix for suffix in INTERVAL_SUFFIXES] if metric.interval else []
        keys += [BASELINE_PREFIX + metric.name] if metric.baseline else []
    return keys


def higher_is_better() -> dict[str, bool]:
    """Direction of every scored key, as metrics.json records it (lm-evaluation-harness's convention)."""
    directions = {}
    for metric in METRICS.values():
        if metric.higher_is_better is not None:
            directions[metric.name] = metric.higher_is_better
            if metric.baseline:
                directions[BASELINE_PREFIX + metric.name] = metric.higher_is_better
    return directions


# --- what a loaded model carries ----------------------------------------------------------------------------

# The attribute where a model compiled for fixed shapes keeps its torch.compile arguments: specsweep.models.compile
# writes it, specsweep.decoding.runner reads it (to prefill apart, pad verifications and fuse the draft's rounds).
# Here because neither wing may import the other.
FIXED_SHAPES = "fixed_shape_compile"


# --- the files ---------------------------------------------------------------------------------------------

class Status(TypedDict, total=False):
    """status.json, written first ("running") and last ("done" or "failed"): "done" means the rest is complete."""

    status: Literal["running", "done", "failed"]
    key: str  # the cell's identity hash: equal keys measure the same thing
    cell: dict[str, Any]  # the cell's study axes (see `Cell.axes`), so a failed job's row needs no config
    time: str  # UTC, ISO 8601
    same_as: str  # done by copying this sibling job directory's identical cell
    error: str  # failed: "<ExceptionType>: <one sentence>"
    traceback: str  # failed: for bugs, not for bad input


class MetricsRecord(TypedDict, total=False):
    """metrics.json."""

    key: str
    cell: dict[str, Any]  # as in Status
    metrics: dict[str, Any]  # keys of `metric_keys()`; None where undefined (no drafts, no prediction)
    higher_is_better: dict[str, bool]
    counts: dict[str, Any]  # the method's summed DecodeStats: rounds, drafted, accepted, rejections, seconds, ...
    baseline_counts: dict[str, Any]
    models: dict[str, str]  # role -> hub id or directory
    params: dict[str, int]  # role -> parameter count
    cards: dict[str, dict[str, Any]]  # role -> what specsweep.distill wrote beside that model, where it did
    applied: dict[str, dict[str, Any]]  # role -> what the loaded model reports: attn, dtype, quantized, cache
    method_settings: dict[str, Any]  # what the method reports it ran with, in the job's last call (adaptive lookahead:
    # the schedule, threshold and where they ended)
    memory: dict[str, Any]  # role -> weight_bytes, kv_cache_bytes; peak_bytes (CUDA) and extra_bytes
    load_seconds: float  # model loading, never part of latency
    num_samples: int
    config: dict[str, Any]  # the resolved config
    provenance: dict[str, Any]  # git commit, library versions, device, CPU/GPU, threads, time
    wandb: dict[str, Any] | None  # where the W&B run went
    same_as: str  # a copy of a sibling's identical cell
    skipped: bool  # returned by a job that found its cell already done (never written)


class Sample(TypedDict):
    """One line of samples.jsonl: one prompt, texts from the first repeat, timings over all repeats."""

    id: str
    prompt: str
    reference: str
    output: str
    baseline_output: str
    tokens_match: bool  # the method's tokens equal the baseline's
    first_divergence: int | None  # where the method's tokens first leave the baseline's; None when identical
    divergence_margin: float | None  # greedy: the target's top-1 minus top-2 logit there (a near-tie when small)
    new_tokens: int
    ms_per_token: list[float]  # per repeat
    baseline_ms_per_token: list[float]
    acceptance_rate: float | None
    accepted_per_position: list[int]
    trace: list[list[int]]  # the first repeat's rounds, in order: [drafted, accepted] (one target token follows)
    replay: dict[str, Any] | None  # the draft along the baseline's first-repeat output (`specsweep.app.replay`):
    # prompt_tokens, new_tokens, and `matches` ("1" where its greedy choice is the target's token) or `acceptance`
    # (Σ min(p, q) per position, sampling); None where the method does not replay
    quality: dict[str, float]


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, flush it to disk, then rename over `path`: a reader
    sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False,
                                     encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_status(job_dir: Path) -> Status | None:
    try:
        return json.loads((job_dir / STATUS).read_text())
    except (OSError, ValueError):
        return None


# --- one vocabulary ----------------------------------------------------------------------------------------

def bootstrap(name: str, units: Sequence[Sequence[float]], statistic: Callable[[Sequence[Sequence[float]]], float],
              seed: int = 0) -> dict[str, float]:
    """`statistic` of the units as `name`, with `name_low` and `name_high`, the percentile bootstrap interval at
    CONFIDENCE (Efron & Tibshirani 1993): the units resampled with replacement RESAMPLES times, seeded."""
    draw = random.Random(seed)
    estimates = sorted(statistic(draw.choices(units, k=len(units))) for _ in range(RESAMPLES))
    tail = round(RESAMPLES * (1 - CONFIDENCE) / 2)
    return {name: statistic(units), f"{name}_low": estimates[tail], f"{name}_high": estimates[-tail - 1]}


def spread_text(median: float, low: float, high: float, unit: str = "×") -> str:
    """How a figure and its interval (or range) read everywhere: '1.50× [1.40, 1.60]'."""
    return f"{median:.2f}{unit} [{low:.2f}, {high:.2f}]"


def count_label(count: float) -> str:
    """A parameter count as papers and hub ids name sizes: 6911616 -> 6.9M, 2000000 -> 2M, 574400 -> 574K."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            value = count / size
            return f"{value:.{1 if value < 10 else 0}f}".removesuffix(".0") + unit
    return str(int(count))


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]
