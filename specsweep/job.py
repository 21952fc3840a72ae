"""One cell of a sweep: `run(cfg) -> dict`, callable without Hydra.

validate -> load models and prompts -> warm up -> run the method and the autoregressive baseline on the same
prompts, interleaved, `bench.repeats` times -> metrics of ../shared/BRIEF.md section 2 and quality ->
samples.jsonl, metrics.json, then status.json (written last, so "done" means the rest is complete) -> W&B.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from specsweep import datasets, families, optimize, quality, results, tracking
from specsweep.decoding import METHODS, DecodeStats, Generation, Sampling, derive
from specsweep.errors import ConfigError
from specsweep.measure import interleave, warm_up
from specsweep.theory import GAMMAS

log = logging.getLogger(__name__)
BASELINE = "autoregressive"
BASELINE_PREFIX = "baseline_"  # metrics of the baseline measured in the same job: baseline_ms_per_token, ...
# bench.reference: seed 000's reference row, autoregressive decoding with no optimisation, timed in the same job.
REFERENCE = "reference"
REFERENCE_SETTING = optimize.Setting(attn="eager")  # float32, no quantisation, no compile; and no KV cache
# Keys that do not change what a cell measures: left out of its identity (the resume and dedupe key).
NOT_IDENTITY = ("logger", "fail_fast", "output_dir", "hydra")


def validate(cfg: DictConfig) -> None:
    """Every check that needs no model and no data, so that bad input fails before anything loads."""
    method = cfg.method
    if method.name not in METHODS:
        raise ConfigError(f"method.name={method.name!r} is not a method; the methods are {', '.join(METHODS)}.")
    families.validate(cfg.model_family, cfg.draft if method.uses_draft else None)
    if method.uses_gamma and not (isinstance(cfg.gamma, int) and cfg.gamma in GAMMAS):
        raise ConfigError(f"gamma={cfg.gamma} is invalid for method {method.name}; it must be an integer in "
                          f"{GAMMAS.start}..{GAMMAS.stop - 1}.")
    for key in ("max_new_tokens", "repeats"):
        if cfg.bench[key] < 1:
            raise ConfigError(f"bench.{key}={cfg.bench[key]} is invalid; it must be at least 1.")
    if cfg.bench.warmup < 0:
        raise ConfigError(f"bench.warmup={cfg.bench.warmup} is invalid; it must be 0 or more.")
    sampling(cfg)
    optimize.validate(cfg.optimization, device(cfg.device), method)
    datasets.validate(cfg.dataset)
    quality.validate(cfg.dataset)


def sampling(cfg: DictConfig) -> Sampling:
    try:
        return Sampling(**OmegaConf.to_container(cfg.sampling))
    except ValueError as error:
        raise ConfigError(f"sampling.{error}") from None


def device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is invalid; use auto, cpu, cuda or cuda:N.") from None
    if chosen.type == "cuda" and not (torch.cuda.is_available() and (chosen.index or 0) < torch.cuda.device_count()):
        raise ConfigError(f"device={name} is not available on this machine ({torch.cuda.device_count()} CUDA "
                          f"devices); use device=cpu or device=auto.")
    return chosen


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What this cell measures. A method that ignores `draft` or `gamma` has the same identity for every value
    of them, so a sweep over those axes runs it once."""
    cell = {key: value for key, value in OmegaConf.to_container(cfg, resolve=True).items() if key not in NOT_IDENTITY}
    if not cfg.method.uses_draft:
        cell.pop("draft")
    if not cfg.method.uses_gamma:
        cell.pop("gamma")
    return cell


def cell_key(cfg: DictConfig) -> str:
    return hashlib.sha256(json.dumps(identity(cfg), sort_keys=True).encode()).hexdigest()[:16]


def run(cfg: DictConfig, sweep_dir: Path | None = None) -> dict[str, Any]:
    """Run one cell into cfg.output_dir and return its metrics.json content. Raises on failure, after
    recording it in status.json. `sweep_dir`: in a multirun, where the other cells' directories are, so a
    cell already done (an earlier run of the same sweep, or an identical cell) is not measured again."""
    out = Path(cfg.output_dir)
    optimize.canonicalize(cfg.optimization)
    key = cell_key(cfg)
    done = results.find_done(out, key, sweep_dir)
    if done is not None:
        return results.reuse(out, done, key)
    results.start(out, key)
    try:
        validate(cfg)
        record = measure_cell(cfg, out, key)
    except BaseException as error:
        results.fail(out, key, error)
        raise
    return record


def measure_cell(cfg: DictConfig, out: Path, key: str) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    dev = device(cfg.device)
    method = cfg.method
    settings = optimize.settings(cfg.optimization)
    models = families.load(cfg.model_family, cfg.draft if method.uses_draft else None, dev, settings)
    examples = datasets.load_examples(cfg.dataset, models.tokenizer)
    prompts = [models.tokenizer(e.prompt, return_tensors="pt").input_ids.to(dev) for e in examples]
    calls = {method.name: method_call(cfg, models, dev), BASELINE: baseline_call(cfg, models, dev)}
    if cfg.bench.reference:
        calls[REFERENCE] = reference_call(cfg, models, dev)

    compiling = optimize.Compilation()
    # Compiled forwards get a graph per input shape and cache state, and which ones a decode meets depends on the
    # prompt (acceptance decides the lengths): warming up on every prompt compiles what the timed calls meet.
    compiled = any(setting.compile for setting in settings.values())
    for prompt in prompts if compiled else prompts[:1]:
        warm_up(calls, prompt, cfg.bench.warmup)
    compile_seconds = compiling.seconds()
    per_call: dict[str, list[list[Generation]]] = {name: [[] for _ in prompts] for name in calls}
    repeats = cfg.bench.repeats
    progress = tqdm(interleave(calls, prompts, repeats, cfg.seed), total=repeats * len(prompts),
                    desc=f"{method.name} {cfg.draft if method.uses_draft else ''}".strip(), unit="prompt")
    for _, i, outputs in progress:
        for name, generation in outputs.items():
            per_call[name][i].append(generation)
        progress.set_postfix(running_figures(per_call[method.name]))
    progress.close()
    compile_seconds_timed = compiling.seconds() - compile_seconds
    if compile_seconds_timed > 0:
        log.warning("torch.compile compiled during the timed calls (%.1f s): raise bench.warmup so that the "
                    "timings exclude compilation", compile_seconds_timed)

    samples = sample_records(examples, per_call, method.name, models.tokenizer)
    summary, per_sample = score_quality(cfg, examples, samples, "output")
    for sample, scores in zip(samples, per_sample, strict=True):
        sample["quality"] = scores
    # The baseline's own quality, so a study can show what the method changed (zero for greedy decoding).
    baseline_summary, _ = score_quality(cfg, examples, samples, "baseline_output", skip=("exact_match",))

    metrics = timing_metrics(per_call, method.name, repeats) | summary
    caches = per_call[method.name][0][0].settings["cache"]  # role -> the KV cache class the loop used, or None
    metrics |= {"compile_seconds": compile_seconds, "compile_seconds_timed": compile_seconds_timed}
    metrics |= {f"{BASELINE_PREFIX}{name}": value for name, value in baseline_summary.items()}
    record = {
        "key": key,
        "cell": cell(cfg),
        "metrics": metrics,
        "higher_is_better": results.HIGHER_IS_BETTER | quality.HIGHER_IS_BETTER,
        "counts": total(per_call[method.name]).to_dict(),
        "baseline_counts": total(per_call[BASELINE]).to_dict(),
        "models": models.locations,
        "params": {role: optimize.num_parameters(model) for role, model in loaded(models)},
        # What the loaded models and the decoding loop report, not what was asked for.
        "applied": {role: optimize.applied(model) | {"kv_cache": caches.get(role)} for role, model in loaded(models)},
        "load_seconds": models.load_seconds,
        "num_samples": len(examples),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "provenance": results.provenance(dev),
    }
    record["wandb"] = tracking.log_job(cfg, record, samples, out)
    results.finish(out, record, samples)
    return record


def loaded(models: families.Models) -> list[tuple[str, torch.nn.Module]]:
    return [(role, model) for role, model in (("target", models.target), ("draft", models.draft)) if model is not None]


def cell(cfg: DictConfig) -> dict[str, Any]:
    """The axes a study tabulates, from a job's config: None for an axis the method ignores."""
    method = cfg.method
    return {"method": method.name, "draft": cfg.draft if method.uses_draft else None,
            "gamma": cfg.gamma if method.uses_gamma else None, "model_family": cfg.model_family.name,
            "dataset": cfg.dataset.name, "optimization": cfg.optimization.name}


def score_quality(cfg: DictConfig, examples: list[datasets.Example], samples: list[dict[str, Any]], field: str,
                  skip: tuple[str, ...] = ()) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Quality of the texts in samples[i][field] (the method's or the baseline's output)."""
    return quality.score(
        [name for name in cfg.dataset.metrics if name not in skip], [s[field] for s in samples],
        [s["baseline_output"] for s in samples], [s["reference"] for s in samples], language=cfg.dataset.language,
        prompts=[e.prompt for e in examples], tests=[test_program(e.fields) for e in examples],
        execute_code=cfg.dataset.execute_code)


def decode_kwargs(cfg: DictConfig, models: families.Models) -> dict[str, Any]:
    """What the method and its baseline share, so both decode under the same settings."""
    return dict(max_new_tokens=cfg.bench.max_new_tokens, sampling=sampling(cfg), use_cache=cfg.optimization.kv_cache,
                eos_token_id=models.target.generation_config.eos_token_id)


def method_call(cfg: DictConfig, models: families.Models, dev: torch.device):
    """The configured method as (prompt, call index) -> Generation."""
    method, decode = cfg.method, METHODS[cfg.method.name]
    kwargs = decode_kwargs(cfg, models) | dict(method.options)
    if method.uses_gamma:
        kwargs["gamma"] = cfg.gamma
    if method.uses_draft:
        kwargs["tokenizers"] = (models.tokenizer, models.draft_tokenizer)
    args = (models.target, models.draft) if method.uses_draft else (models.target,)
    return lambda prompt, call: decode(*args, prompt, generator=generator(cfg, dev, call), **kwargs)


def baseline_call(cfg: DictConfig, models: families.Models, dev: torch.device):
    decode, kwargs = METHODS[BASELINE], decode_kwargs(cfg, models)
    return lambda prompt, call: decode(models.target, prompt, generator=generator(cfg, dev, call), **kwargs)


def reference_call(cfg: DictConfig, models: families.Models, dev: torch.device):
    """The target loaded and run with no optimisation at all: eager attention, float32, no KV cache."""
    plain = families.load(cfg.model_family, None, dev, {"target": REFERENCE_SETTING}).target
    decode, kwargs = METHODS[BASELINE], decode_kwargs(cfg, models) | {"use_cache": False}
    return lambda prompt, call: decode(plain, prompt, generator=generator(cfg, dev, call), **kwargs)


def generator(cfg: DictConfig, dev: torch.device, call: int) -> torch.Generator | None:
    """Sampling draws from a generator seeded per call, so a job is reproducible; greedy needs none."""
    if cfg.sampling.temperature == 0:
        return None
    return torch.Generator(dev).manual_seed(cfg.seed * 1_000_003 + call)


def total(generations: list[list[Generation]]) -> DecodeStats:
    stats = DecodeStats()
    for per_prompt in generations:
        for generation in per_prompt:
            stats = stats + generation.stats
    return stats


def ms_per_token(stats: DecodeStats) -> float:
    return 1e3 * stats.seconds / max(1, stats.new_tokens)


def running_figures(generations: list[list[Generation]]) -> dict[str, str]:
    stats = total(generations)
    figures = {"tok/s": f"{stats.new_tokens / stats.seconds:.0f}" if stats.seconds else "-"}
    if stats.drafted:
        figures["acc"] = f"{stats.accepted / stats.drafted:.2f}"
    return figures


def timing_metrics(per_call: dict[str, list[list[Generation]]], name: str, repeats: int) -> dict[str, Any]:
    """The brief's metrics from the summed counts, and the speedup per repeat (same prompts, interleaved),
    reported as median with min, max and standard deviation."""
    method_total, baseline_total = total(per_call[name]), total(per_call[BASELINE])
    metrics = derive(method_total, baseline_total)

    def repeat_ms(generations: list[list[Generation]], repeat: int) -> float:
        return ms_per_token(total([[per_prompt[repeat]] for per_prompt in generations]))

    def speedups(over: str) -> list[float]:
        return [repeat_ms(per_call[over], r) / repeat_ms(per_call[name], r) for r in range(repeats)]

    rates = [1e3 / repeat_ms(per_call[name], r) for r in range(repeats)]
    metrics |= spread("speedup", speedups(BASELINE)) | spread("tokens_per_s", rates)
    baseline = derive(baseline_total)
    metrics[f"{BASELINE_PREFIX}ms_per_token"] = baseline["ms_per_token"]
    metrics[f"{BASELINE_PREFIX}tokens_per_s"] = baseline["tokens_per_s"]
    if REFERENCE in per_call:
        metrics |= spread(f"{REFERENCE}_speedup", speedups(REFERENCE))
        metrics[f"{REFERENCE}_ms_per_token"] = derive(total(per_call[REFERENCE]))["ms_per_token"]
    metrics["accepted_per_position"] = method_total.accepted_per_position
    return metrics


def spread(name: str, values: list[float]) -> dict[str, float]:
    """median as `name`, with `name_min`, `name_max` and `name_std` over repeats."""
    return {name: statistics.median(values), f"{name}_min": min(values), f"{name}_max": max(values),
            f"{name}_std": statistics.pstdev(values)}


def sample_records(examples: list[datasets.Example], per_call: dict[str, list[list[Generation]]], name: str,
                   tokenizer) -> list[dict[str, Any]]:
    """One record per prompt: texts from the first repeat, timings and acceptance over all repeats."""
    records = []
    for i, example in enumerate(examples):
        runs, baseline_runs = per_call[name][i], per_call[BASELINE][i]
        stats = total([runs])
        records.append({
            "id": example.id,
            "prompt": example.prompt,
            "reference": example.reference,
            "output": tokenizer.decode(runs[0].tokens, skip_special_tokens=True),
            "baseline_output": tokenizer.decode(baseline_runs[0].tokens, skip_special_tokens=True),
            "tokens_match": runs[0].tokens.tolist() == baseline_runs[0].tokens.tolist(),
            "new_tokens": runs[0].stats.new_tokens,
            "ms_per_token": [ms_per_token(g.stats) for g in runs],
            "baseline_ms_per_token": [ms_per_token(g.stats) for g in baseline_runs],
            "acceptance_rate": stats.accepted / stats.drafted if stats.drafted else None,
            "accepted_per_position": stats.accepted_per_position,
        })
    return records


def test_program(fields: dict[str, Any]) -> str | None:
    """HumanEval-style rows carry their unit test and entry point; pass@1 runs them (opt-in, sandboxed)."""
    if "test" in fields and "entry_point" in fields:
        return f"{fields['test']}\ncheck({fields['entry_point']})\n"
    return None

