"""specsweep.data.corpus: the standard library split by path hash into training and held-out files, and the held-out
files cut into the windows the `stdlib_heldout` dataset serves."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from specsweep.data import corpus
from specsweep.data.prompts import load_examples
from specsweep.errors import ConfigError
from tests.data.helpers import lines, stdlib_config

pytestmark = pytest.mark.usefixtures("private_datasets_cache")


def test_corpus_is_the_stdlib_without_tests_split_by_file():
    train = corpus.stdlib_files("train")
    heldout = corpus.stdlib_files("heldout")
    assert train == sorted(train) and heldout and not set(train) & set(heldout)
    assert all("test" not in path.parts and "tests" not in path.parts for path in train + heldout)
    assert 0.02 < len(heldout) / (len(train) + len(heldout)) < 0.1


def test_stdlib_rows_come_only_from_heldout_files(stdlib_examples):
    root = Path(sysconfig.get_paths()["stdlib"])
    heldout = {p.relative_to(root).as_posix() for p in corpus.stdlib_files("heldout")}
    train = {p.relative_to(root).as_posix() for p in corpus.stdlib_files("train")}
    assert len(stdlib_examples) == 40
    for example in stdlib_examples:
        assert example.fields["path"] in heldout and example.fields["path"] not in train
        assert example.id == f"{example.fields['path']}:{example.fields['line']}"


def test_stdlib_windows_are_the_file_lines_they_name(stdlib_examples):
    root = Path(sysconfig.get_paths()["stdlib"])
    for example in stdlib_examples:
        assert example.prompt == example.fields["prefix"] and example.reference == example.fields["continuation"]
        # The prompt stops before its trailing newlines, which open the continuation (see `windows`).
        assert example.prompt == example.prompt.rstrip() and example.reference.startswith("\n")
        text = (root / example.fields["path"]).read_text(encoding="utf-8", errors="replace")
        start = example.fields["line"] - 1
        assert "".join(lines(text)[start : start + 9]) == example.prompt + example.reference
        prefix = lines(example.prompt + "\n")
        assert len(prefix) <= 6 and len(lines(example.reference.lstrip("\n"))) <= 3
        assert 2 * sum(1 for line in prefix if line.strip()) >= len(prefix)  # not mostly blank


def test_no_window_is_no_rows():
    with pytest.raises(ConfigError, match=r"^dataset\.prefix_lines=100000 and dataset\.continuation_lines=8 leave no "
                                          r"window in the held-out standard-library files; their sum must be at most "
                                          r"\d+ lines \(the longest file\), less to find windows that are not mostly "
                                          r"blank\.$"):
        load_examples(stdlib_config(prefix_lines=100_000))
