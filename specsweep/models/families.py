"""Model families: a target and drafts named by size. Hub families name hub ids (or local directories); the
embedded family is built offline on first use. Every model loads through the same `from_pretrained` call."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from huggingface_hub import constants as hub_constants
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from specsweep.errors import ConfigError, UnknownDraft, first_line
from specsweep.models import embedded, switches

if TYPE_CHECKING:
    from specsweep.schema import ModelFamilyConfig

log = logging.getLogger(__name__)
SOURCES = ("hub", "embedded")
RECIPES = {"full": embedded.Recipe(), "micro": embedded.MICRO}


@dataclass
class Models:
    target: PreTrainedModel
    draft: PreTrainedModel | None
    tokenizer: PreTrainedTokenizerBase  # the target's
    draft_tokenizer: PreTrainedTokenizerBase | None
    locations: dict[str, str]  # role -> the id or directory it was loaded from
    load_seconds: float

    def loaded(self) -> dict[str, PreTrainedModel]:
        """Role -> model, for the models that were loaded."""
        return {role: model for role, model in (("target", self.target), ("draft", self.draft)) if model is not None}


def validate(family: ModelFamilyConfig, draft: str | None) -> None:
    """What can be checked before anything is built or loaded. `draft`: the size asked for, if any."""
    if family.source not in SOURCES:
        raise ConfigError(f"model_family.source={family.source!r} is invalid; it must be one of {', '.join(SOURCES)}.")
    if family.source == "embedded" and family.recipe not in RECIPES:
        raise ConfigError(f"model_family.recipe={family.recipe!r} is invalid; it must be one of {', '.join(RECIPES)}.")
    if draft is not None and draft not in family.drafts:
        raise UnknownDraft([draft], family.name, list(family.drafts))


def locate(family: ModelFamilyConfig, draft: str | None) -> dict[str, str]:
    """Role ("target", "draft") -> hub id or local directory. Builds the embedded family on first use."""
    names = {"target": family.target} | ({"draft": family.drafts[draft]} if draft is not None else {})
    if family.source == "hub":
        return names
    root = built_family(family.recipe)
    built = json.loads((root / embedded.MANIFEST).read_text())["drafts"]
    missing = sorted(set(names.values()) - set(built.values()) - {family.target})
    if missing:
        raise ConfigError(f"model_family.drafts of {family.name} names {', '.join(missing)}, which the built family "
                          f"at {root} lacks; its drafts are {', '.join(built)}.")
    return {role: str(root / name) for role, name in names.items()}


@functools.cache
def built_family(recipe: str) -> Path:
    path = embedded.family_dir(RECIPES[recipe])
    if not embedded.is_complete(path):
        log.info("Building the embedded model family (%s recipe) into %s: once, about 11 minutes on 2 CPU cores "
                 "for the full recipe", recipe, path)
    return embedded.build(RECIPES[recipe])


def load(family: ModelFamilyConfig, draft: str | None, device: torch.device,
         settings: dict[str, switches.Setting] | None = None) -> Models:
    """The target, and the draft of size `draft` when given, on `device`, in eval mode, each loaded and
    prepared as its switches.Setting says (role -> Setting; default: the `auto` switches, nothing else)."""
    start = time.perf_counter()
    where = locate(family, draft)
    models, tokenizers = {}, {}
    for role, location in where.items():
        with explain_missing(location, "model_family.target" if role == "target" else f"model_family.drafts.{draft}"):
            setting = (settings or {}).get(role, switches.Setting())
            models[role] = load_model(location, family.revision, family.trust_remote_code, str(device), setting)
            tokenizers[role] = load_tokenizer(location, family.revision, family.trust_remote_code)
    return Models(models["target"], models.get("draft"), tokenizers["target"], tokenizers.get("draft"), where,
                  time.perf_counter() - start)


# Jobs of one sweep run in one process (Hydra's basic launcher). A model stays loaded while the next job needs it
# (the target, while only the draft changes); `release` drops the rest before a job loads.
Key = tuple[str, str | None, bool, str, switches.Setting]  # load_model's arguments
HELD: dict[Key, PreTrainedModel] = {}


def wanted(family: ModelFamilyConfig, draft: str | None, device: torch.device,
           settings: dict[str, switches.Setting] | None = None) -> set[Key]:
    """The models `load` would return for these arguments."""
    return {(location, family.revision, family.trust_remote_code, str(device),
             (settings or {}).get(role, switches.Setting())) for role, location in locate(family, draft).items()}


def release(keep: set[Key]) -> None:
    """Drop every held model not in `keep`, collect it, and hand its memory back to the device: a sweep over
    drafts or dtypes of a large target holds only what its current job needs."""
    for key in [key for key in HELD if key not in keep]:
        del HELD[key]
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_model(location: str, revision: str | None, trust_remote_code: bool, device: str,
               setting: switches.Setting) -> PreTrainedModel:
    key = (location, revision, trust_remote_code, device, setting)
    if key not in HELD:
        HELD[key] = _load_model(*key)
    return HELD[key]


def _load_model(location: str, revision: str | None, trust_remote_code: bool, device: str,
                setting: switches.Setting) -> PreTrainedModel:
    config = AutoConfig.from_pretrained(location, revision=revision, trust_remote_code=trust_remote_code)
    setting = switches.resolve(setting, config, torch.device(device), location)
    kwargs = switches.load_kwargs(setting, torch.device(device))
    model = AutoModelForCausalLM.from_pretrained(location, config=config, revision=revision,
                                                 trust_remote_code=trust_remote_code, **kwargs)
    if "device_map" not in kwargs:
        model = model.to(device)
    return switches.prepare(model.eval(), setting)


@functools.lru_cache(maxsize=3)
def load_tokenizer(location: str, revision: str | None, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(location, revision=revision, trust_remote_code=trust_remote_code)


@contextlib.contextmanager
def explain_missing(location: str, param: str) -> Iterator[None]:
    """Any failure to load a model or its tokenizer becomes one sentence: which one, why, and how to fix it (the
    cause stays chained, for the traceback in status.json)."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:
        if not isinstance(error, OSError) or Path(location).is_dir():
            raise ConfigError(f"{param}={location!r} could not be loaded ({type(error).__name__}: "
                              f"{first_line(error)}); point it at a complete Hugging Face model directory (config, "
                              f"weights and tokenizer files) or hub id, or download it again.") from error
        if location.startswith(("/", ".", "~")):
            raise ConfigError(f"{param}={location!r} is not an existing directory; point it at a saved model "
                              f"directory or a hub id.") from None
        raise ConfigError(
            f"{param}={location!r} is not in the local Hugging Face cache ({hub_constants.HF_HUB_CACHE}) and the "
            f"hub cannot be reached; download it on a connected machine with `hf download {location}` (then copy "
            f"the cache here) or set {param} to a local directory."
        ) from None
