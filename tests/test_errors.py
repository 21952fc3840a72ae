"""specsweep.errors.looks_like_path: which missing names are reported as missing paths, and which go on to a hub."""

from __future__ import annotations

import pytest

from specsweep.errors import looks_like_path


@pytest.mark.parametrize("name", ["/data/rows.jsonl", "./rows", "../rows", "~/rows", "a/b/c", "C:\\data\\rows"])
def test_a_path_is_a_path(name):
    assert looks_like_path(name)


@pytest.mark.parametrize("name", ["gpt2", "csebuetnlp/xlsum", "rows.jsonl", "org/rows.txt"])
def test_a_hub_id_is_not_a_path_unless_its_suffix_says_so(name):
    assert not looks_like_path(name)


def test_a_suffix_makes_a_path_whatever_its_case():
    assert looks_like_path("rows.jsonl", [".jsonl"]) and looks_like_path("rows.JSONL", [".jsonl"])
    assert not looks_like_path("org/name", [".jsonl"])
