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
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from specsweep.errors import ConfigError, UnknownDraft, first_line
from specsweep.models import embedded, medusa, store, switches

if TYPE_CHECKING:
    from specsweep.schema import ModelFamilyConfig

log = logging.getLogger(__name__)
SOURCES = ("hub", "embedded")
RECIPES = {"full": embedded.Recipe(), "micro": embedded.MICRO}
MEDUSA_RECIPES = {"full": embedded.MEDUSA_RECIPE, "micro": embedded.MICRO_MEDUSA_RECIPE}
AUTO_HEADS = "auto"  # model_family.medusa of an embedded family: heads trained for its target on first use


@dataclass
class Models:
    target: PreTrainedModel
    draft: PreTrainedModel | None
    tokenizer: PreTrainedTokenizerBase  # the target's
    draft_tokenizer: PreTrainedTokenizerBase | None
    locations: dict[str, str]  # role -> the id or directory it was loaded from
    load_seconds: float
    heads: PreTrainedModel | None = None  # Medusa heads (methods that use them)

    def loaded(self) -> dict[str, PreTrainedModel]:
        """Role -> model, for the models that were loaded."""
        return {role: model for role, model in (("target", self.target), ("draft", self.draft),
                                                ("heads", self.heads)) if model is not None}


def validate(family: ModelFamilyConfig, draft: str | None) -> None:
    """What can be checked before anything is built or loaded. `draft`: the size asked for, if any."""
    if family.source not in SOURCES:
        raise ConfigError(f"model_family.source={family.source!r} is invalid; it must be one of {', '.join(SOURCES)}.")
    if family.source == "embedded" and family.recipe not in RECIPES:
        raise ConfigError(f"model_family.recipe={family.recipe!r} is invalid; it must be one of {', '.join(RECIPES)}.")
    if family.ladder is not None and (family.source != "embedded" or family.ladder not in embedded.LADDERS):
        allowed = ", ".join(embedded.LADDERS) if family.source == "embedded" else "null for a hub family"
        raise ConfigError(f"model_family.ladder={family.ladder!r} is invalid; it must be {allowed}.")
    if draft is not None and draft not in family.drafts:
        raise UnknownDraft([draft], family.name, list(family.drafts))


def validate_heads(family: ModelFamilyConfig, method: str, gamma: int | None) -> None:
    """A method that drafts with Medusa heads needs the family to name them, and (where their count is known
    before loading: an embedded family's recipe) no more lookahead than there are heads."""
    if family.medusa is None:
        raise ConfigError(f"method={method} needs Medusa heads, and model family {family.name} names none; set "
                          f"model_family.medusa to heads trained with `specsweep-train-medusa train`.")
    if family.source == "embedded":
        if family.medusa != AUTO_HEADS:
            raise ConfigError(f"model_family.medusa={family.medusa!r} is invalid for the embedded family "
                              f"{family.name}; it must be {AUTO_HEADS} (trained for its target on first use).")
        count = MEDUSA_RECIPES[family.recipe].heads
        if gamma is not None and gamma > count:
            raise ConfigError(f"gamma={gamma} is invalid for method={method} on {family.name}, whose target has "
                              f"{count} Medusa heads (one proposed token each); use gamma of 1..{count}.")


def locate(family: ModelFamilyConfig, draft: str | None, heads: bool = False) -> dict[str, str]:
    """Role ("target", "draft", "heads") -> hub id or local directory. Builds the embedded family (and its Medusa
    heads) on first use."""
    names = {"target": family.target} | ({"draft": family.drafts[draft]} if draft is not None else {})
    if family.source == "hub":
        return names | ({"heads": family.medusa} if heads else {})
    root = built_family(family.recipe)
    drafts = root if family.ladder is None or draft is None else built_ladder(family.recipe, family.ladder)
    built = json.loads((drafts / store.MANIFEST).read_text())["drafts"]
    built = {name: name for name in built} if family.ladder else built
    missing = sorted(set(names.values()) - set(built.values()) - {family.target})
    if missing:
        raise ConfigError(f"model_family.drafts of {family.name} names {', '.join(missing)}, which the built family "
                          f"at {drafts} lacks; its drafts are {', '.join(built)}.")
    where = {role: str((drafts if role == "draft" else root) / name) for role, name in names.items()}
    if heads:
        where["heads"] = str(built_heads(family.recipe))
    return where


@functools.cache
def built_family(recipe: str) -> Path:
    path = embedded.family_dir(RECIPES[recipe])
    if not store.is_complete(path):
        log.info("Building the embedded model family (%s recipe) into %s: once, a few minutes on a CPU for the full "
                 "recipe (each phase's seconds go into its family.json)", recipe, path)
    return embedded.build(RECIPES[recipe])


@functools.cache
def built_ladder(recipe: str, ladder: str) -> Path:
    family = built_family(recipe)
    path = embedded.ladder_dir(family, embedded.LADDERS[ladder])
    if not store.is_complete(path):
        log.info("Distilling the %s ladder of drafts for the embedded family's target into %s: once, up to half an "
                 "hour on 2 CPU cores for a full ladder (a killed build resumes)", ladder, path)
    return embedded.build_ladder(family, embedded.LADDERS[ladder])


@functools.cache
def built_heads(recipe: str) -> Path:
    family = built_family(recipe)
    path = embedded.medusa_dir(family, MEDUSA_RECIPES[recipe])
    if not store.is_complete(path):
        log.info("Training Medusa heads for the embedded family's target (%s recipe) into %s: once, a few minutes "
                 "on 2 CPU cores for the full recipe", recipe, path)
    return embedded.build_medusa(family, MEDUSA_RECIPES[recipe])


def load(family: ModelFamilyConfig, draft: str | None, device: torch.device,
         settings: dict[str, switches.Setting] | None = None, heads: bool = False) -> Models:
    """The target, and the draft of size `draft` when given (the Medusa heads when `heads`), on `device`, in eval
    mode, each loaded and prepared as its switches.Setting says (role -> Setting; default: the `auto` switches)."""
    start = time.perf_counter()
    where = locate(family, draft, heads)
    models, tokenizers = {}, {}
    params = {"target": "model_family.target", "draft": f"model_family.drafts.{draft}", "heads": "model_family.medusa"}
    for role, location in where.items():
        with explain_missing(location, params[role]):
            setting = heads_setting(models["target"]) if role == "heads" else (settings or {}).get(role,
                                                                                                 switches.Setting())
            models[role] = load_model(location, family.revision, family.trust_remote_code, str(device), setting)
            if role != "heads":
                tokenizers[role] = load_tokenizer(location, family.revision, family.trust_remote_code)
    return Models(models["target"], models.get("draft"), tokenizers["target"], tokenizers.get("draft"), where,
                  time.perf_counter() - start, models.get("heads"))


def heads_setting(target: PreTrainedModel) -> switches.Setting:
    """Medusa heads run in the target's dtype, on its hidden states; nothing else of its switches applies."""
    return switches.Setting(dtype=str(target.dtype).removeprefix("torch."))


# Jobs of one sweep run in one process (Hydra's basic launcher). A model stays loaded while the next job needs it
# (the target, while only the draft changes); `release` drops the rest before a job loads.
Key = tuple[str, str | None, bool, str, switches.Setting]  # load_model's arguments
HELD: dict[Key, PreTrainedModel] = {}


def wanted(family: ModelFamilyConfig, draft: str | None, device: torch.device,
           settings: dict[str, switches.Setting] | None = None, heads: bool = False) -> set[Key]:
    """The models `load` would return for these arguments."""
    where = locate(family, draft, heads)
    keys = {(location, family.revision, family.trust_remote_code, str(device),
             (settings or {}).get(role, switches.Setting())) for role, location in where.items() if role != "heads"}
    if heads:  # they load in the target's dtype, known once it is loaded: keep whatever is held of them
        keys |= {key for key in HELD if key[0] == where["heads"]}
    return keys


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
    auto = AutoModel if config.model_type == medusa.MedusaConfig.model_type else \
        AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    model = auto.from_pretrained(location, config=config, revision=revision, trust_remote_code=trust_remote_code,
                                 **kwargs)
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
