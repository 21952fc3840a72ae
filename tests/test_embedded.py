"""The embedded family's recipe, on its micro version: offline, cached, race-safe, loadable like a hub model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from specsweep.data import corpus
from specsweep.decoding import autoregressive, speculative
from specsweep.models import embedded


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    return embedded.build(embedded.MICRO, tmp_path_factory.mktemp("home"))


def test_corpus_is_the_stdlib_without_tests_split_by_file():
    train = corpus.stdlib_files("train")
    heldout = corpus.stdlib_files("heldout")
    assert train == sorted(train) and heldout and not set(train) & set(heldout)
    assert all("test" not in path.parts and "tests" not in path.parts for path in train + heldout)
    assert 0.02 < len(heldout) / (len(train) + len(heldout)) < 0.1


def test_family_loads_through_from_pretrained(family):
    manifest = json.loads((family / embedded.MANIFEST).read_text())
    assert len(manifest["drafts"]) == len(embedded.MICRO.drafts) + len(embedded.NGRAMS)
    code = "def add(a, b):\n    return a + b\n"
    for name in ["target", *manifest["drafts"]]:
        model = AutoModelForCausalLM.from_pretrained(family / name)
        tokenizer = AutoTokenizer.from_pretrained(family / name)
        assert tokenizer.decode(tokenizer(code)["input_ids"]) == code
        assert model.config.eos_token_id == tokenizer.eos_token_id
        assert manifest["params"][name] == sum(p.numel() for p in model.parameters())
    # Transformer drafts are named by parameter count, smallest first; the n-gram tables follow, named by order.
    sized = [name for name in manifest["drafts"] if name not in embedded.NGRAMS]
    assert sized == sorted(sized, key=lambda n: manifest["params"][n])
    assert list(manifest["drafts"])[len(sized):] == list(embedded.NGRAMS)


def test_engine_runs_on_the_family(family):
    manifest = json.loads((family / embedded.MANIFEST).read_text())
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
    stamp = (family / embedded.MANIFEST).stat().st_mtime_ns
    assert embedded.build(embedded.MICRO, family.parent.parent) == family
    assert (family / embedded.MANIFEST).stat().st_mtime_ns == stamp


def test_a_half_built_entry_is_rebuilt_not_loaded(tmp_path):
    path = embedded.build(embedded.MICRO, tmp_path)
    (path / "target" / "model.safetensors").unlink()
    assert not embedded.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and embedded.is_complete(path)
    weights = path / "target" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated, as by a full disk
    assert not embedded.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and embedded.is_complete(path)
    weights = path / "target" / "model.safetensors"
    weights.write_bytes(bytes(len(weights.read_bytes())))  # same size, wrong contents
    assert not embedded.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and embedded.is_complete(path)
    (path / embedded.MANIFEST).write_text("{not json")
    assert not embedded.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and embedded.is_complete(path)
    assert not list(tmp_path.glob("families/*.tmp-*"))  # no staging directory left behind


@pytest.mark.slow
def test_two_processes_building_at_once_leave_one_complete_entry(tmp_path):
    command = [sys.executable, "-m", "specsweep.models.embedded", "build", "--micro"]
    env = {"SPECSWEEP_HOME": str(tmp_path), "PATH": ""}
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    entries = sorted(p.name for p in (tmp_path / "families").iterdir() if p.is_dir())
    assert len(entries) == 1 and embedded.is_complete(tmp_path / "families" / entries[0])
    # Both report the same entry; neither left a staging directory behind.
    assert outs[0][0].split()[0] == outs[1][0].split()[0]


def test_recipe_key_changes_with_the_recipe():
    assert embedded.Recipe().key() != embedded.MICRO.key()
    assert embedded.Recipe().key() == embedded.Recipe().key()


def test_a_killed_build_leaves_nothing_that_survives(tmp_path, monkeypatch):
    path = embedded.family_dir(embedded.MICRO, tmp_path)
    stale = path.with_name(f"{path.name}.tmp-999999")  # what a build killed midway leaves
    (stale / "target").mkdir(parents=True)

    def interrupted(out, recipe):
        (out / "target").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "_build_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embedded.build(embedded.MICRO, tmp_path)
    assert not list(path.parent.glob("*.tmp-*")) and not path.exists()
