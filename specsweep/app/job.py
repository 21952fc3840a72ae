"""One cell of a sweep: `run(cfg) -> MetricsRecord`, callable without Hydra's app.

typed config -> status "running" (with the cell) -> `cell.check` (every check, once) -> load models and prompts
-> warm up -> the method, the autoregressive baseline and the A/A control (the baseline again) on the same
prompts, interleaved, `bench.repeats` times
-> the metrics of `specsweep.record` and quality -> samples.jsonl, metrics.json, then status.json (written last,
so "done" means the rest is complete) -> W&B.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from specsweep import record, tracking
from specsweep.app import cell as cells
from specsweep.app import files, provenance
from specsweep.app.cell import Cell
from specsweep.data import prompts, quality
from specsweep.decoding import METHODS, DecodeStats, Generation, derive
from specsweep.decoding.engine import divergence_margin, first_divergence
from specsweep.decoding.measure import interleave, warm_up
from specsweep.models import families, switches
from specsweep.models.compile import Compilation

log = logging.getLogger(__name__)
BASELINE = "autoregressive"
# bench.reference: the reference row of Hayashizaki et al. 2024, table 2: autoregressive decoding with no
# optimisation (eager attention, float32, no quantisation, no compile, no KV cache), timed in the same job.
REFERENCE = "reference"
REFERENCE_SETTING = switches.Setting(attn="eager", dtype="float32")
# bench.control: the baseline a second time, interleaved like the rest, so that its "speedup" over itself (an A/A
# test) shows how far apart two identical calls time here: the noise floor of every speedup.
CONTROL = "control"
# bench.uninstrumented: the method again with no per-forward timing, interleaved, so that the ratio of the two shows
# what the timing costs (on CUDA it records events and never synchronises, so the ratio should be 1).
UNINSTRUMENTED = "uninstrumented"

Call = Callable[[torch.Tensor, int], Generation]  # (prompt [1, S], call index) -> Generation
Runs = dict[str, list[list[Generation]]]  # call name -> per prompt -> per repeat


def run(cfg: DictConfig, sweep_dir: Path | None = None) -> record.MetricsRecord:
    """Run one cell into cfg.output_dir and return its metrics.json content. Raises on failure, after
    recording it in status.json. `sweep_dir`: in a multirun, where the other cells' directories are, so a
    cell already done (an earlier run of the same sweep, or an identical cell) is not measured again."""
    spec = cells.typed(cfg)
    out, key, axes = Path(spec.output_dir), cells.key(spec), cells.axes(spec)
    done = files.find_done(out, key, sweep_dir)
    if done is not None:
        return files.reuse(out, done, key, axes)
    files.start(out, key, axes)
    provenance.fit_threads()
    try:
        return measure(cells.check(spec), out)
    except BaseException as error:
        status = files.fail(out, key, axes, error)
        if isinstance(error, Exception):  # not for an interrupt: the user is waiting
            tracking.log_failure(spec.logger, cells.label(axes), status, out, dataclasses.asdict(spec))
        raise


def measure(cell: Cell, out: Path) -> record.MetricsRecord:
    torch.manual_seed(cell.spec.seed)
    heads = cell.method.uses_heads
    needed = families.wanted(cell.family, cell.draft, cell.device, cell.settings, heads)
    if cell.bench.reference:
        needed |= families.wanted(cell.family, None, cell.device, {"target": REFERENCE_SETTING})
    families.release(keep=needed)  # the models of earlier jobs that this one does not use
    models = families.load(cell.family, cell.draft, cell.device, cell.settings, heads)
    examples = prompts.read_examples(cell.dataset, models.tokenizer)
    inputs = [models.tokenizer(e.prompt, return_tensors="pt").input_ids.to(cell.device) for e in examples]
    calls = {cell.method.name: method_call(cell, models), BASELINE: baseline_call(cell, models)}
    if cell.bench.reference:
        calls[REFERENCE] = reference_call(cell, models)
    if cell.bench.control:
        calls[CONTROL] = baseline_call(cell, models)
    if cell.bench.uninstrumented:
        calls[UNINSTRUMENTED] = method_call(cell, models, instrumented=False)

    peaks: dict[str, int] = {}
    if cell.device.type == "cuda":  # each call's peak allocation, reset before it: the method's and the baseline's
        calls = {name: peak_tracked(call, name, peaks, cell.device) for name, call in calls.items()}
    compiling = Compilation()
    # Compiled forwards get a graph per input shape and cache state, and which ones a decode meets depends on the
    # prompt (acceptance decides the lengths): warming up on every prompt compiles what the timed calls meet. The
    # longest first, so that a static cache is sized once for the job's longest sequence.
    compiled = any(setting.compile for setting in cell.settings.values())
    for prompt in sorted(inputs, key=lambda ids: ids.shape[-1], reverse=True) if compiled else inputs[:1]:
        warm_up(calls, prompt, cell.bench.warmup)
    compile_seconds = compiling.seconds()
    runs: Runs = {name: [[] for _ in inputs] for name in calls}
    repeats = cell.bench.repeats
    progress = tqdm(interleave(calls, inputs, repeats, cell.spec.seed), total=repeats * len(inputs),
                    desc=cell.label, unit="prompt")
    for _, i, outputs in progress:
        for name, generation in outputs.items():
            runs[name][i].append(generation)
        progress.set_postfix(running_figures(runs[cell.method.name]))
    progress.close()
    # What the method reports it ran with in its last timed call (an adaptive schedule that carries its lookahead
    # between calls has settled most there); the caches are recorded per role in `applied`.
    last = {k: v for k, v in outputs[cell.method.name].settings.items() if k not in ("cache", "cache_bytes")}
    compile_seconds_timed = compiling.seconds() - compile_seconds
    if compile_seconds_timed > 0:
        log.warning("torch.compile compiled during the timed calls (%.1f s): raise bench.warmup so that the "
                    "timings exclude compilation", compile_seconds_timed)

    diverged = divergences(cell, models, inputs, runs)
    samples = sample_records(examples, runs, cell.method.name, models.tokenizer, diverged)
    summary, per_sample = score_quality(cell, examples, samples, "output")
    for sample, scores in zip(samples, per_sample, strict=True):
        sample["quality"] = scores
    # The baseline's own quality, so a study can show what the method changed (zero for greedy decoding).
    baseline_summary, _ = score_quality(cell, examples, samples, "baseline_output", skip=("exact_match",))

    metrics = timing_metrics(runs, cell.method.name, cell.spec.seed) | summary
    margins = [margin for _, margin in diverged if margin is not None]
    metrics["divergence_margin"] = max(margins) if margins else None
    caches = runs[cell.method.name][0][0].settings["cache"]  # role -> the KV cache class the loop used, or None
    metrics |= {"compile_seconds": compile_seconds, "compile_seconds_timed": compile_seconds_timed}
    metrics |= {f"{record.BASELINE_PREFIX}{name}": value for name, value in baseline_summary.items()}
    loaded = models.loaded()
    memory = memory_block(runs, cell.method.name, loaded, peaks)
    metrics["extra_memory_bytes"] = memory["extra_bytes"]
    metrics_record = record.MetricsRecord(
        key=cell.key,
        cell=cell.axes,
        metrics=metrics,
        higher_is_better=record.higher_is_better(),
        counts=total(runs[cell.method.name]).to_dict(),
        baseline_counts=total(runs[BASELINE]).to_dict(),
        models=models.locations,
        params={role: switches.num_parameters(model) for role, model in loaded.items()},
        # What the loaded models and the decoding loop report, not what was asked for.
        applied={role: switches.applied(model) | {"kv_cache": caches.get(role)} for role, model in loaded.items()},
        method_settings=last,
        memory=memory,
        load_seconds=models.load_seconds,
        num_samples=len(examples),
        config=cell.config(),
        provenance=provenance.provenance(cell.device),
    )
    metrics_record["wandb"] = tracking.log_job(cell.spec.logger, cell.label, metrics_record, samples, out)
    files.finish(out, metrics_record, samples)
    return metrics_record


def peak_tracked(call: Call, name: str, peaks: dict[str, int], device: torch.device) -> Call:
    """`call`, with the device's peak allocation reset before it and read after it (outside its timed span)."""

    def tracked(prompt: torch.Tensor, index: int) -> Generation:
        torch.cuda.reset_peak_memory_stats(device)
        generation = call(prompt, index)
        peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated(device))
        return generation

    return tracked


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


def score_quality(cell: Cell, examples: list[prompts.Example], samples: list[record.Sample], field: str,
                  skip: tuple[str, ...] = ()) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Quality of the texts in samples[i][field] (the method's or the baseline's output)."""
    dataset = cell.dataset
    return quality.compute(
        [name for name in dataset.metrics if name not in skip], [s[field] for s in samples],
        [s["baseline_output"] for s in samples], [s["reference"] for s in samples], language=dataset.language,
        prompts=[e.prompt for e in examples], tests=[test_program(e.fields) for e in examples],
        execute_code=dataset.execute_code)


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
    if CONTROL in runs:
        metrics |= record.bootstrap(f"{CONTROL}_speedup", pairs(runs, BASELINE, CONTROL), speedup, seed)
    if UNINSTRUMENTED in runs:
        metrics |= record.bootstrap("instrumentation_cost", pairs(runs, UNINSTRUMENTED, name), speedup, seed)
    metrics["accepted_per_position"] = method_total.accepted_per_position
    return metrics


Pair = tuple[float, int, float, int]  # one (prompt, repeat): seconds and new tokens of a call, then of the other's


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
            quality={},
        ))
    return records


def test_program(fields: dict[str, Any]) -> str | None:
    """HumanEval-style rows carry their unit test and entry point; pass@1 runs them (opt-in, sandboxed)."""
    if "test" in fields and "entry_point" in fields:
        return f"{fields['test']}\ncheck({fields['entry_point']})\n"
    return None
