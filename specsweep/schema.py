"""Structured configs: the schema of every config group. The YAML files under conf/ fill them in, so a typo
or a wrong type fails at composition with Hydra's own message. `specsweep.app.cell` turns a composed config into
these dataclasses (`OmegaConf.to_object`) and runs the semantic checks (a draft size the family lacks, gamma
out of range) once, before any model loads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from specsweep import record

CONF = Path(__file__).resolve().parent / "conf"  # the config tree `python -m specsweep` composes

# Top-level keys that say how a job runs, not what it measures: they are not part of a cell's identity (its
# resume key), not axes of a study, and not in a job directory's name (conf/hydra/default.yaml reads this list
# through the `specsweep.not_measured` resolver).
NOT_MEASURED = ("logger", "fail_fast", "output_dir", "published")


@dataclass
class ModelFamilyConfig:
    name: str = MISSING
    source: str = "hub"  # "hub": ids or local paths; "embedded": built offline by specsweep.models.embedded
    recipe: str = "full"  # embedded only: "full" or "micro" (the seconds-long recipe the tests use)
    # embedded only: the drafts are a ladder distilled for the family's target by specsweep.models.distill ("kd",
    # "plain": the same shapes on next-token loss, "micro"), built on first use; None: the family's own drafts.
    ladder: str | None = None
    target: str = MISSING  # hub id or local directory; embedded: a directory inside the built family
    drafts: dict[str, str] = field(default_factory=dict)  # size name (parameter count) -> hub id or path
    default_draft: str = MISSING  # the size used when `draft` is not given
    revision: str | None = None  # hub revision (branch, tag or commit) of every model
    trust_remote_code: bool = False
    # Medusa heads for the target (method=medusa): a hub id or directory written by `python -m specsweep.medusa
    # train`; embedded families: "auto", trained on first use. None: the family has none.
    medusa: str | None = None


@dataclass
class DatasetConfig:
    name: str = MISSING
    source: str = MISSING  # "stdlib_heldout", "humaneval" (both offline), or "hub"
    path: str | None = None  # hub: a dataset id, or a local directory (save_to_disk) or .jsonl/.json/.csv file
    subset: str | None = None  # hub: the dataset's configuration name (xlsum: "japanese")
    split: str = "test"
    revision: str | None = None
    template: str = MISSING  # how a row becomes a prompt: str.format over the row's fields
    reference_field: str = MISSING  # the row field quality is scored against
    truncate: dict[str, int] = field(default_factory=dict)  # field -> max target tokens, before templating
    metrics: list[str] = field(default_factory=lambda: ["exact_match", "rouge"])
    language: str = "en"  # ROUGE tokenisation: "en", "ja" (MeCab via fugashi + unidic-lite) or "code"
    execute_code: bool = False  # pass@1 runs model-written code (sandboxed subprocess): opt in explicitly
    num_samples: int = 8  # prompts per job, a reproducible subsample drawn with `seed`
    subsample: str = "random"  # random (drawn with `seed`) | first (the first num_samples rows, e.g. HumanEval/0..99)
    seed: int = 0
    prefix_lines: int = 24  # stdlib_heldout: lines of source in a prompt
    continuation_lines: int = 8  # stdlib_heldout: lines of the reference continuation


@dataclass
class MethodConfig:
    """What a method *can* do (draft, gamma, KV cache, compile) is registered beside its function in
    `specsweep.decoding.METHODS`, not here: only the user's options are configurable."""

    name: str = MISSING  # a key of specsweep.decoding.METHODS
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments (prompt_lookup: max_ngram)
    # A module to import first, for a method of your own: it registers itself with @specsweep.decoding.method.
    module: str | None = None


@dataclass
class OptimizationConfig:
    """Applied to target and draft alike; `draft` overrides some per-model switches for the draft only."""

    name: str = MISSING
    kv_cache: bool = True  # false: every forward re-reads the whole sequence (our own loops only)
    # dynamic: transformers' DynamicCache, grown per forward and cropped on a rejection; static: its StaticCache,
    # preallocated for the job's longest sequence and rolled back by moving the write position (our own loops only)
    cache: str = "dynamic"
    attn: str = "auto"  # auto (SDPA where the architecture has it, else eager) | eager | sdpa (alias bettertransformer)
    dtype: str = "auto"  # auto (float32 on CPU; on CUDA the checkpoint's half precision) | float32 | bfloat16 | float16
    quantization: str = "none"  # none | int8-dynamic (CPU) | bnb-8bit | bnb-4bit (CUDA, bitsandbytes)
    compile: bool = False  # torch.compile the forwards (speculative, autoregressive); compile time not timed
    compile_backend: str = "inductor"  # torch.compile's backend; "eager" traces without generating code
    draft: dict[str, Any] = field(default_factory=dict)  # e.g. {quantization: none}: the draft differs here


def dotted(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"sampling": {"top_k": None}} -> {"sampling.top_k": None}; lists as JSON text, empty maps left out."""
    flat: dict[str, Any] = {}
    for name, value in config.items():
        if isinstance(value, dict):
            flat |= dotted(value, f"{prefix}{name}.")
        else:
            flat[f"{prefix}{name}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def axes(config: dict[str, Any], uses_draft: bool, uses_gamma: bool) -> dict[str, Any]:
    """The columns a study tabulates, from a resolved config: every measured key as a dotted column
    (sampling.temperature, optimization.kv_cache, ...; the family's whole draft map is not an axis, `draft` is),
    the setting label, and the cell's names: method, draft and gamma (None where the method ignores them), family,
    dataset and optimisation preset."""
    measured = {key: value for key, value in config.items() if key not in NOT_MEASURED}
    measured["model_family"] = {k: v for k, v in measured["model_family"].items() if k != "drafts"}
    flat = dotted(measured)
    optimization = {k.removeprefix("optimization."): v for k, v in flat.items() if k.startswith("optimization.")}
    return flat | {
        "setting": setting_label(optimization),
        "method": config["method"]["name"], "draft": config["draft"] if uses_draft else None,
        "gamma": config["gamma"] if uses_gamma else None, "model_family": config["model_family"]["name"],
        "dataset": config["dataset"]["name"], "optimization": config["optimization"]["name"],
    }


def families_with(size: str) -> list[str]:
    """The model families of conf/model_family/ that have a draft of this size name."""
    return [path.stem for path in sorted((CONF / "model_family").glob("*.yaml"))
            if size in (OmegaConf.load(path).get("drafts") or {})]


def setting_label(switches: dict[str, Any]) -> str:
    """The optimisation switches (keys of OptimizationConfig, `draft.*` for the draft's) that differ from the
    schema's defaults, as one label ("attn=eager, kv_cache=False"), so each combination is its own study group;
    "default" when none differs."""
    defaults = OptimizationConfig(name="default")
    changed = {name: value for name, value in switches.items()
               if name != "name" and value != getattr(defaults, name, None)}
    return ", ".join(f"{name}={value}" for name, value in sorted(changed.items())) or "default"


@dataclass
class LoggerConfig:
    name: str = MISSING  # "wandb" or "none"
    project: str = "specsweep"
    entity: str | None = None
    group: str | None = None  # default: the sweep directory's name, so one sweep is one W&B group
    mode: str | None = None  # None: $WANDB_MODE if set, else online when logged in, else offline
    tags: list[str] = field(default_factory=list)


@dataclass
class SamplingConfig:
    temperature: float = 0.0  # 0 is greedy
    top_k: int | None = None
    top_p: float | None = None


@dataclass
class BenchConfig:
    max_new_tokens: int = 64
    repeats: int = 3  # each prompt runs this many times per method, interleaved with the baseline
    warmup: int = 1  # untimed generations per method before the first timed one
    reference: bool = False  # also time unoptimised autoregressive decoding (eager, no KV cache), interleaved
    control: bool = True  # also time the baseline against itself, interleaved: the A/A control, the noise floor
    uninstrumented: bool = False  # also time the method with per-forward timing off: what the timing costs
    threads: int | None = None  # torch's CPU threads for the job (null: torch's default, or SLURM's allocation)


@dataclass
class Config:
    model_family: ModelFamilyConfig = MISSING
    method: MethodConfig = MISSING
    optimization: OptimizationConfig = MISSING
    dataset: DatasetConfig = MISSING
    logger: LoggerConfig = MISSING
    draft: str = MISSING
    gamma: int = 3
    seed: int = 0
    device: str = "auto"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    fail_fast: bool = False
    output_dir: str = MISSING
    published: str | None = None  # a paper's table (CSV) that the study of this sweep sets beside its cells


def dirname(overrides: str, limit: int = 160) -> str:
    """A job directory's name from its overrides: one path component (a value that is a path, such as
    dataset.path=/data/x.jsonl, must not make nested directories) and short enough for any file system (a long
    name keeps its start and a hash of the rest)."""
    name = overrides.replace("/", "_")
    if len(name) <= limit:
        return name
    return f"{name[:limit - 13]}-{record.short_hash(name, 12)}"


def register() -> None:
    for name, resolver in (("specsweep.not_measured", lambda *more: [*NOT_MEASURED, *more]),
                           ("specsweep.dirname", dirname)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, node in [("model_family", ModelFamilyConfig), ("dataset", DatasetConfig), ("method", MethodConfig),
                        ("optimization", OptimizationConfig), ("logger", LoggerConfig)]:
        store.store(group=group, name=f"base_{group}", node=node)


register()
