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
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from specsweep import record, tracking
from specsweep.app import calls, files, paired, provenance, replay
from specsweep.app import cell as cells
from specsweep.app.calls import BASELINE, Call
from specsweep.app.cell import Cell
from specsweep.app.paired import Runs
from specsweep.data import prompts, quality
from specsweep.decoding.measure import interleave, warm_up
from specsweep.models import families, store, switches
from specsweep.models.compile import Compilation

log = logging.getLogger(__name__)


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
    provenance.fit_threads(spec.bench.threads)
    try:
        return measure(cells.check(spec), out)
    except BaseException as error:
        status = files.fail(out, key, axes, error)
        if isinstance(error, Exception):  # not for an interrupt: the user is waiting
            tracking.log_failure(spec.logger, cells.label(axes), status, out, dataclasses.asdict(spec))
        raise


def measure(cell: Cell, out: Path) -> record.MetricsRecord:
    """Load, build the calls, warm up, time them interleaved, score, then write and log the record."""
    torch.manual_seed(cell.spec.seed)
    models = load_models(cell)
    examples, inputs = load_inputs(cell, models)
    named, peaks = calls.build(cell, models)
    compiling = Compilation()
    warm_up_calls(cell, named, inputs)
    compile_seconds = compiling.seconds()
    runs, last = time_calls(cell, named, inputs)
    compile_seconds_timed = compiling.seconds() - compile_seconds
    if compile_seconds_timed > 0:
        log.warning("torch.compile compiled during the timed calls (%.1f s): raise bench.warmup so that the "
                    "timings exclude compilation", compile_seconds_timed)
    samples, metrics, baseline_quality = score(cell, models, examples, inputs, runs)
    traced, replayed = replay.job_traces(cell, models, inputs, runs)
    for sample, entry in zip(samples, traced or [], strict=False):
        sample["replay"] = entry
    metrics |= replayed
    metrics |= {"compile_seconds": compile_seconds, "compile_seconds_timed": compile_seconds_timed}
    metrics |= {f"{record.BASELINE_PREFIX}{name}": value for name, value in baseline_quality.items()}
    metrics_record = assemble_record(cell, models, len(examples), runs, metrics, last, peaks)
    metrics_record["wandb"] = tracking.log_job(cell.spec.logger, cell.label, metrics_record, samples, out)
    files.finish(out, metrics_record, samples)
    return metrics_record


def load_models(cell: Cell) -> families.Models:
    families.release(keep=calls.wanted(cell))  # the models of earlier jobs that this one does not use
    return families.load(cell.family, cell.draft, cell.device, cell.settings, cell.method.uses_heads)


def load_inputs(cell: Cell, models: families.Models) -> tuple[list[prompts.Example], list[torch.Tensor]]:
    examples = prompts.read_examples(cell.dataset, models.tokenizer)
    inputs = [models.tokenizer(e.prompt, return_tensors="pt").input_ids.to(cell.device) for e in examples]
    return examples, inputs


def warm_up_calls(cell: Cell, named: dict[str, Call], inputs: list[torch.Tensor]) -> None:
    """Compiled forwards get a graph per input shape and cache state, and which ones a decode meets depends on the
    prompt (acceptance decides the lengths): warming up on every prompt compiles what the timed calls meet. The
    longest first, so that a static cache is sized once for the job's longest sequence."""
    compiled = any(setting.compile for setting in cell.settings.values())
    for prompt in sorted(inputs, key=lambda ids: ids.shape[-1], reverse=True) if compiled else inputs[:1]:
        warm_up(named, prompt, cell.bench.warmup)


def time_calls(cell: Cell, named: dict[str, Call], inputs: list[torch.Tensor]) -> tuple[Runs, dict[str, Any]]:
    """Every call on every prompt, interleaved, `bench.repeats` times; and what the method reports it ran with in
    its last timed call (an adaptive schedule that carries its lookahead between calls has settled most there; the
    caches are recorded per role in `applied`)."""
    runs: Runs = {name: [[] for _ in inputs] for name in named}
    repeats = cell.bench.repeats
    progress = tqdm(interleave(named, inputs, repeats, cell.spec.seed), total=repeats * len(inputs),
                    desc=cell.label, unit="prompt")
    for _, i, outputs in progress:
        for name, generation in outputs.items():
            runs[name][i].append(generation)
        progress.set_postfix(paired.running_figures(runs[cell.method.name]))
    progress.close()
    last = {k: v for k, v in outputs[cell.method.name].settings.items() if k not in ("cache", "cache_bytes")}
    return runs, last


def score(cell: Cell, models: families.Models, examples: list[prompts.Example], inputs: list[torch.Tensor],
          runs: Runs) -> tuple[list[record.Sample], dict[str, Any], dict[str, float]]:
    """The sample records with their quality; the metrics of timing, quality and divergence; the baseline's quality."""
    diverged = paired.divergences(cell, models, inputs, runs)
    samples = paired.sample_records(examples, runs, cell.method.name, models.tokenizer, diverged)
    summary, per_sample = score_quality(cell, examples, samples, "output")
    for sample, scores in zip(samples, per_sample, strict=True):
        sample["quality"] = scores
    # The baseline's own quality, so a study can show what the method changed (zero for greedy decoding).
    baseline_summary, _ = score_quality(cell, examples, samples, "baseline_output", skip=("exact_match",))
    metrics = paired.timing_metrics(runs, cell.method.name, cell.spec.seed) | summary
    margins = [margin for _, margin in diverged if margin is not None]
    metrics["divergence_margin"] = max(margins) if margins else None
    return samples, metrics, baseline_summary


def assemble_record(cell: Cell, models: families.Models, num_samples: int, runs: Runs, metrics: dict[str, Any],
                    last: dict[str, Any], peaks: dict[str, int]) -> record.MetricsRecord:
    caches = runs[cell.method.name][0][0].settings["cache"]  # role -> the KV cache class the loop used, or None
    loaded = models.loaded()
    memory = paired.memory_block(runs, cell.method.name, loaded, peaks)
    metrics["extra_memory_bytes"] = memory["extra_bytes"]
    return record.MetricsRecord(
        key=cell.key,
        cell=cell.axes,
        metrics=metrics,
        higher_is_better=record.higher_is_better(),
        counts=paired.total(runs[cell.method.name]).to_dict(),
        baseline_counts=paired.total(runs[BASELINE]).to_dict(),
        models=models.locations,
        params={role: switches.num_parameters(model) for role, model in loaded.items()},
        cards={role: card for role, where in models.locations.items() if (card := store.card(where))},
        # What the loaded models and the decoding loop report, not what was asked for.
        applied={role: switches.applied(model) | {"kv_cache": caches.get(role)} for role, model in loaded.items()},
        method_settings=last,
        memory=memory,
        load_seconds=models.load_seconds,
        num_samples=num_samples,
        config=cell.config(),
        provenance=provenance.provenance(cell.device),
    )


def score_quality(cell: Cell, examples: list[prompts.Example], samples: list[record.Sample], field: str,
                  skip: tuple[str, ...] = ()) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Quality of the texts in samples[i][field] (the method's or the baseline's output)."""
    dataset = cell.dataset
    return quality.compute(
        [name for name in dataset.metrics if name not in skip], [s[field] for s in samples],
        [s["baseline_output"] for s in samples], [s["reference"] for s in samples], language=dataset.language,
        prompts=[e.prompt for e in examples], tests=[quality.test_program(e.fields) for e in examples],
        execute_code=dataset.execute_code)
