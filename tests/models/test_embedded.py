"""The embedded family's recipe, on its micro version: offline, keyed by its recipe, loadable like a hub model (the
cache it is built into is tested in test_store)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from specsweep.decoding import autoregressive, speculative
from specsweep.models import embedded, store


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    return embedded.build(embedded.MICRO, tmp_path_factory.mktemp("home"))


def test_family_loads_through_from_pretrained(family):
    manifest = json.loads((family / store.MANIFEST).read_text())
    assert len(manifest["drafts"]) == len(embedded.MICRO.drafts) + len(embedded.NGRAM_ORDERS)
    code = "def add(a, b):\n    return a + b\n"
    for name in ["target", *manifest["drafts"]]:
        model = AutoModelForCausalLM.from_pretrained(family / name)
        tokenizer = AutoTokenizer.from_pretrained(family / name)
        assert tokenizer.decode(tokenizer(code)["input_ids"]) == code
        assert model.config.eos_token_id == tokenizer.eos_token_id
        assert manifest["params"][name] == sum(p.numel() for p in model.parameters())
    # Transformer drafts are named by parameter count, smallest first; the n-gram tables follow, named by order.
    sized = [name for name in manifest["drafts"] if name not in embedded.NGRAM_ORDERS]
    assert sized == sorted(sized, key=lambda n: manifest["params"][n])
    assert list(manifest["drafts"])[len(sized):] == list(embedded.NGRAM_ORDERS)


def test_engine_runs_on_the_family(family):
    manifest = json.loads((family / store.MANIFEST).read_text())
    target = AutoModelForCausalLM.from_pretrained(family / "target")
    tokenizer = AutoTokenizer.from_pretrained(family / "target")
    prompt = tokenizer("import os\n\ndef main():\n", return_tensors="pt")["input_ids"]
    want = autoregressive(target, prompt, max_new_tokens=16).tokens.tolist()
    for name in manifest["drafts"]:
        draft = AutoModelForCausalLM.from_pretrained(family / name)
        out = speculative(target, draft, prompt, gamma=3, max_new_tokens=16,
                          tokenizers=(tokenizer, AutoTokenizer.from_pretrained(family / name)))
        assert out.tokens.tolist() == want


def test_a_second_build_reuses_the_cache(family):
    stamp = (family / store.MANIFEST).stat().st_mtime_ns
    assert embedded.build(embedded.MICRO, family.parent.parent) == family
    assert (family / store.MANIFEST).stat().st_mtime_ns == stamp


def test_recipe_key_changes_with_the_recipe():
    assert embedded.Recipe().key() != embedded.MICRO.key()
    assert embedded.Recipe().key() == embedded.Recipe().key()
