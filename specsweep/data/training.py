"""Training text for drafts fitted on a corpus (n-gram tables, Medusa heads, the embedded family): the texts a command
line names, and their token ids as documents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from specsweep.data import corpus, sources
from specsweep.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TextSource:
    """A corpus named on a command line, in the terms `sources.hub_table` reads (a `sources.Source`): a path or hub
    id and its split; a command line sets no subset or revision."""

    path: str
    split: str = "train"
    subset: str | None = None
    revision: str | None = None


def training_texts(source: str, field: str = "text", split: str = "train") -> list[str]:
    """The texts a draft is fitted on. `source`: "stdlib" (the files the embedded family trains on), a plain-text
    file (one text), or anything `dataset.path` accepts: a hub id, a saved or plain data directory, a
    .jsonl/.json/.csv/.parquet file, whose `field` column is read. Errors name `dataset.path=` and
    `dataset.split=`, as for a dataset config; a command line rewrites them into its own flags."""
    if source == "stdlib":
        return corpus.read_texts(corpus.stdlib_files("train"))
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() not in sources.LOCAL_FORMATS:
        return [path.read_text(encoding="utf-8", errors="replace")]
    table = sources.hub_table(TextSource(path=source, split=split))
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
