"""One cell of a sweep, typed: the composed config becomes a `Cell` once, with every semantic check run once,
before anything loads. Nothing below the job sees the raw config.

What a cell *is* lives here too: its identity (the resume and dedupe key) and its axes (the columns a study
tabulates, written into status.json so that even a failed job's row needs no config).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from specsweep import record, schema
from specsweep.data import prompts, quality
from specsweep.decoding import METHODS, Method, Sampling, methods
from specsweep.decoding.runner import CACHES
from specsweep.errors import ConfigError, UnknownDraft
from specsweep.models import families, switches
from specsweep.theory import GAMMAS

CAPABILITIES = ("uses_draft", "uses_gamma", "needs_kv_cache", "compilable")


def typed(cfg: DictConfig) -> schema.Config:
    """The composed config as the schema's dataclasses (interpolations resolved), aliases canonicalised."""
    spec = OmegaConf.to_object(cfg)
    switches.canonicalize(spec.optimization)
    return spec


def capabilities(spec: schema.Config) -> Method | None:
    """The configured method, or None where it is unknown or its module does not import (`check` says which)."""
    try:
        return methods.find(spec.method.name, spec.method.module)
    except ImportError:
        return None


def uses(spec: schema.Config) -> tuple[bool, bool]:
    """(uses draft, uses gamma); an unknown method (refused by `check`) keeps both, so its row shows them."""
    method = capabilities(spec)
    return (method.uses_draft, method.uses_gamma) if method else (True, True)


def identity(spec: schema.Config) -> dict[str, Any]:
    """What this cell measures. A method that ignores `draft` or `gamma` has the same identity for every value
    of them, so a sweep over those axes runs it once. What the method can do is part of what it measures (and
    keeps the keys of sweeps made when the capabilities were config keys)."""
    config = {key: value for key, value in dataclasses.asdict(spec).items() if key not in schema.NOT_MEASURED}
    method = capabilities(spec)
    if method is not None:
        config["method"] |= {name: getattr(method, name) for name in CAPABILITIES}
        # An option at the function's own default measures what leaving it out does (and keeps older keys).
        defaults = {name: p.default for name, p in inspect.signature(method.decode).parameters.items()}
        config["method"]["options"] = {name: value for name, value in config["method"]["options"].items()
                                       if name not in defaults or value != defaults[name]}
    uses_draft, uses_gamma = uses(spec)
    if method is None or not method.uses_heads:  # nor its Medusa heads (and keys from before families named them)
        del config["model_family"]["medusa"]
    if config["optimization"]["cache"] == "dynamic":  # the cache every cell used before there was a choice
        del config["optimization"]["cache"]
    if config["bench"]["threads"] is None:  # torch's default, what every cell used before it was a setting
        del config["bench"]["threads"]
    if not uses_draft:
        config.pop("draft")
    if not uses_gamma:
        config.pop("gamma")
    return config


def key(spec: schema.Config) -> str:
    return record.short_hash(json.dumps(identity(spec), sort_keys=True), 16)


def axes(spec: schema.Config) -> dict[str, Any]:
    """The columns a study tabulates (see `schema.axes`)."""
    return schema.axes(dataclasses.asdict(spec), *uses(spec))


def label(cell_axes: dict[str, Any]) -> str:
    """A short name of a cell: "speculative-1.2M-g5"."""
    gamma = cell_axes.get("gamma")
    parts = (cell_axes["method"], cell_axes.get("draft"), gamma and f"g{gamma}")
    return "-".join(str(part) for part in parts if part)


@dataclass(frozen=True)
class Cell:
    """A checked cell: everything the job needs, typed. Built only by `check`."""

    spec: schema.Config  # the typed config, for the parts below that need no further checking
    method: Method
    draft: str | None  # None: the method takes no draft
    gamma: int | None  # None: the method takes no lookahead
    sampling: Sampling
    device: torch.device
    settings: dict[str, switches.Setting]  # role -> how its model loads; "draft" only when one loads
    key: str
    axes: dict[str, Any]

    @property
    def family(self) -> schema.ModelFamilyConfig:
        return self.spec.model_family

    @property
    def dataset(self) -> schema.DatasetConfig:
        return self.spec.dataset

    @property
    def bench(self) -> schema.BenchConfig:
        return self.spec.bench

    @property
    def label(self) -> str:
        return label(self.axes)

    def config(self) -> dict[str, Any]:
        """The resolved config, as metrics.json and W&B record it."""
        return dataclasses.asdict(self.spec)


def check(spec: schema.Config) -> Cell:
    """Every check that needs no model and no data, each once, so that bad input fails before anything loads
    with one sentence; then the typed cell."""
    try:
        method = methods.find(spec.method.name, spec.method.module)
    except ImportError as error:
        raise ConfigError(f"method.module={spec.method.module!r} could not be imported ({error}); it must be an "
                          f"importable module that registers method {spec.method.name!r}.") from None
    if method is None:
        raise ConfigError(f"method.name={spec.method.name!r} is not a method; the methods are {', '.join(METHODS)}.")
    check_options(spec.method.options, method)
    draft = spec.draft if method.uses_draft else None
    try:
        families.validate(spec.model_family, draft)
    except UnknownDraft as error:  # only the app knows the other families' configs
        raise error.found_in(schema.families_with(draft)) from None
    gamma = spec.gamma if method.uses_gamma else None
    if method.uses_gamma and not (isinstance(gamma, int) and gamma in GAMMAS):
        raise ConfigError(f"gamma={gamma} is invalid for method {method.name}; it must be an integer in "
                          f"{GAMMAS.start}..{GAMMAS.stop - 1}.")
    if method.uses_heads:
        families.validate_heads(spec.model_family, method.name, gamma)
    for name in ("max_new_tokens", "repeats"):
        if getattr(spec.bench, name) < 1:
            raise ConfigError(f"bench.{name}={getattr(spec.bench, name)} is invalid; it must be at least 1.")
    if spec.bench.threads is not None and spec.bench.threads < 1:
        raise ConfigError(f"bench.threads={spec.bench.threads} is invalid; it must be at least 1 (or null: torch's "
                          "default).")
    if spec.bench.warmup < 0:
        raise ConfigError(f"bench.warmup={spec.bench.warmup} is invalid; it must be 0 or more.")
    try:
        sampling = Sampling(**dataclasses.asdict(spec.sampling))
    except ValueError as error:
        raise ConfigError(f"sampling.{error}") from None
    dev = switches.device(spec.device)
    settings = check_optimization(spec.optimization, method, dev)
    prompts.validate(spec.dataset)
    quality.validate(spec.dataset)
    return Cell(spec, method, draft, gamma, sampling, dev, settings, key(spec), axes(spec))


# What the job passes itself: a user's option must not replace it.
PASSED = ("target", "draft", "input_ids", "heads", "gamma", "max_new_tokens", "sampling", "use_cache", "eos_token_id",
          "generator", "tokenizers", "instrumented", "cache", "margins")


def check_options(options: dict[str, Any], method: Method) -> None:
    """method.options are keyword arguments of the method's function: a name it does not take is refused by name
    (a function of the user's that takes **kwargs may take any)."""
    parameters = inspect.signature(method.decode).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    takes = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in PASSED]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise ConfigError(f"method.options.{unknown[0]} is not an option of method {method.name}; its options are "
                          f"{', '.join(takes) or 'none'}.")


def check_cache(opt: schema.OptimizationConfig, method: Method) -> None:
    """optimization.cache: a kind our loops know, a KV cache at all, and a method whose loop takes it (its
    function has a `cache` argument; transformers' generate() keeps its own cache)."""
    if opt.cache not in CACHES:
        raise ConfigError(f"optimization.cache={opt.cache!r} is invalid; it must be one of {', '.join(CACHES)}.")
    if opt.cache == "dynamic":
        return
    if not opt.kv_cache:
        raise ConfigError("optimization.cache=static is invalid with optimization.kv_cache=false; a static cache is a "
                          "KV cache.")
    if "cache" not in inspect.signature(method.decode).parameters:
        raise ConfigError(f"optimization.cache=static is invalid for method {method.name}, whose loop does not take "
                          f"a static cache (transformers' generate() keeps its own); it works with speculative, "
                          f"autoregressive and medusa.")


def check_optimization(opt: schema.OptimizationConfig, method: Method, dev: torch.device
                       ) -> dict[str, switches.Setting]:
    """The per-role settings, checked against the device and against what the method can do."""
    roles = switches.settings(opt)
    if not method.uses_draft:
        del roles["draft"]  # no sentence (or warning) about a draft the method never loads
    check_cache(opt, method)
    if method.needs_kv_cache and not opt.kv_cache:
        raise ConfigError(f"optimization.kv_cache=false is invalid for method {method.name}, which needs the KV "
                          f"cache; use method=speculative or autoregressive for a cell without it.")
    for role, setting in roles.items():
        if setting.compile and not method.compilable:
            param = "optimization" if role == "target" else "optimization.draft"
            raise ConfigError(f"{param}.compile=true is invalid for method {method.name}, which runs transformers' "
                              f"generate() with a candidate generator, where compiling the forwards is not valid; "
                              f"compile works with method=speculative or autoregressive.")
    switches.check(roles, dev)
    return roles
