"""Fixtures of the data tests: a tokenizer trained here, the rows as a .jsonl file, a private datasets cache, and
examples cut from the held-out standard library."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from specsweep.data.prompts import Example, load_examples
from specsweep.models import embedded
from tests.data.helpers import ROWS, stdlib_config


@pytest.fixture
def private_datasets_cache(tmp_path, monkeypatch):
    """Local files are converted to Arrow in the datasets cache: keep the user's out of it."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


@pytest.fixture(scope="module")
def tokenizer():
    """A real byte-level BPE tokenizer, trained here on ASCII text: no download."""
    texts = [row["text"] + " " + row["title"] for row in ROWS] * 4
    return embedded.train_tokenizer(texts, vocab_size=300)


@pytest.fixture
def jsonl(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stdlib_examples() -> list[Example]:
    return load_examples(stdlib_config(num_samples=40, prefix_lines=6, continuation_lines=3))
