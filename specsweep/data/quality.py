"""Output quality of a sweep job: exact match with the autoregressive output, ROUGE, pass@1.

The metrics are `evaluate` modules shipped in specsweep/data/metrics and loaded by local path: `evaluate.load("rouge")`
would fetch from the Hub, which fails offline and could change under us.

pass@1 executes model-written code (in a child process, see specsweep.data.sandbox), so it is opt-in: a dataset lists
it among the metrics that apply, and it runs only with `execute_code=True` (`dataset.execute_code=true`); without
it, pass@1 is left out and the job says so. A job calls `validate` once, when it starts, so a bad configuration
fails before any generation is spent, and then `compute`; `score` is both in one call.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specsweep import record
from specsweep.errors import ConfigError

if TYPE_CHECKING:
    import evaluate

    from specsweep.schema import DatasetConfig

METRICS_DIR = Path(__file__).parent / "metrics"

# The summary keys each metric module produces; each also returns `<key>_per_sample`.
KEYS: dict[str, tuple[str, ...]] = {
    "exact_match": ("exact_match",),
    "rouge": ("rouge1", "rouge2", "rougeL"),
    "pass_at_1": ("pass_at_1",),
}
HIGHER_IS_BETTER: dict[str, bool] = {key: record.METRICS[key].higher_is_better for keys in KEYS.values()
                                     for key in keys}
LANGUAGES = ("en", "ja", "code")  # ROUGE's tokenisers (specsweep/data/metrics/rouge)


@functools.cache
def load(name: str) -> evaluate.EvaluationModule:
    """The metric module `name` (one of KEYS), from this package, without network access."""
    _check_names([name])
    # Imported here: evaluate takes seconds to import, and HIGHER_IS_BETTER and validate should not.
    import evaluate

    # keep_in_memory: no Arrow cache files and locks under HF_HOME for parallel sweep jobs to contend for.
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)


def validate(dataset: DatasetConfig) -> None:
    """Raise ConfigError if `score` would reject `dataset`'s metrics, language and execute_code. Cheap (no
    evaluate import), so call it before generating."""
    _validate(list(dataset.metrics), language=dataset.language, execute_code=dataset.execute_code)


def applicable(names: list[str], execute_code: bool) -> list[str]:
    """The metrics to compute: pass@1 only when the user opted in to running model-written code."""
    return [name for name in names if name != "pass_at_1" or execute_code]


def test_program(fields: dict[str, Any]) -> str | None:
    """HumanEval-style rows carry their unit test and entry point; pass@1 runs them (opt-in, sandboxed)."""
    if "test" in fields and "entry_point" in fields:
        return f"{fields['test']}\ncheck({fields['entry_point']})\n"
    return None


def _validate(names: list[str], *, language: str, execute_code: bool) -> None:
    _check_names(names)
    if "rouge" in names and language not in LANGUAGES:
        raise ConfigError(f"dataset.language must be one of {', '.join(LANGUAGES)} for rouge, not {language!r}.")


def score(names: list[str], outputs: list[str], baseline_outputs: list[str], references: list[str],
          **options: Any) -> tuple[dict[str, float], list[dict[str, float]]]:
    """`validate`, then `compute`: for callers that have not checked `names` and `options` yet."""
    _validate(names, language=options.get("language", "en"), execute_code=options.get("execute_code", False))
    return compute(names, outputs, baseline_outputs, references, **options)


def compute(
    names: list[str],
    outputs: list[str],
    baseline_outputs: list[str],
    references: list[str],
    *,
    language: str = "en",
    prompts: list[str] | None = None,
    tests: list[str | None] | None = None,
    execute_code: bool = False,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Score `outputs` with the metrics `names` (already validated): (summary over samples, one dict per sample).

    - "exact_match": outputs against `baseline_outputs` (the autoregressive outputs);
    - "rouge": outputs against `references`, tokenized for `language` ("en", "ja" or "code");
    - "pass_at_1": prompt + output + test run as a program, one per sample, in a sandboxed child process; needs
      `prompts` and `tests` (test code ending in `check(<entry_point>)`, none missing), and runs only with
      `execute_code=True` (see `applicable`).

    Keys are those in KEYS for the requested names; a summary is NaN when there are no samples.
    """
    summary: dict[str, float] = {}
    per_sample: list[dict[str, float]] = [{} for _ in outputs]
    for name in dict.fromkeys(applicable(names, execute_code)):  # ordered and without repeats
        result = _compute(name, outputs, baseline_outputs=baseline_outputs, references=references,
                          language=language, prompts=prompts, tests=tests)
        for key in KEYS[name]:
            summary[key] = float(result[key])
            for sample, value in zip(per_sample, result[f"{key}_per_sample"], strict=True):
                sample[key] = float(value)
    return summary, per_sample


def _compute(name: str, outputs: list[str], *, baseline_outputs: list[str], references: list[str], language: str,
             prompts: list[str] | None, tests: list[str | None] | None) -> dict:
    """The module's result; it raises ValueError when its inputs differ in length."""
    if name == "exact_match":
        inputs = {"references": baseline_outputs}
    elif name == "rouge":
        inputs = {"references": references, "language": language}
    elif prompts is None or tests is None or None in tests:
        raise ConfigError("dataset.metrics includes pass_at_1, which needs every row to carry a unit test "
                          "(HumanEval's test and entry_point fields); remove pass_at_1 for this dataset.")
    else:
        inputs = {"references": tests, "prompts": prompts}
    return load(name).compute(predictions=outputs, **inputs)


def metric_info(description: str, inputs_description: str) -> evaluate.MetricInfo:
    """What every metric module declares: text predictions scored against text references."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description, citation="", inputs_description=inputs_description,
        features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
    )


def mean(values: list) -> float:
    """The metric modules' average: no samples is "unknown" (NaN), not "all wrong"."""
    return sum(values) / len(values) if values else float("nan")


def _check_names(names: list[str]) -> None:
    unknown = [name for name in names if name not in KEYS]
    if unknown:
        raise ConfigError(f"dataset.metrics has unknown {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(KEYS)}.")
