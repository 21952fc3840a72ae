"""specsweep.data.prompts: a dataset config checked before any data is read, and rows made into examples (fields
checked, truncated to target tokens, templated, subsampled reproducibly)."""

from __future__ import annotations

import pytest

from specsweep.data.prompts import load_examples, truncate, validate
from specsweep.errors import ConfigError
from tests.data.helpers import ROWS, config, stdlib_config

pytestmark = pytest.mark.usefixtures("private_datasets_cache")


def test_stdlib_is_deterministic_and_subsamples_nest(stdlib_examples):
    again = load_examples(stdlib_config(num_samples=40, prefix_lines=6, continuation_lines=3))
    assert again == stdlib_examples
    fewer = load_examples(stdlib_config(num_samples=5, prefix_lines=6, continuation_lines=3))
    assert len(fewer) == 5 and {e.id for e in fewer} <= {e.id for e in stdlib_examples}
    other_seed = load_examples(stdlib_config(num_samples=5, prefix_lines=6, continuation_lines=3, seed=1))
    assert {e.id for e in other_seed} != {e.id for e in fewer}


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


def test_the_first_rows_instead_of_a_random_subsample():
    """A reproduction of Chen et al. 2023 scored the first 100 HumanEval problems, not a random 100."""
    first = load_examples(config(source="humaneval", template="{prompt}", reference_field="canonical_solution",
                                 num_samples=5, subsample="first"))
    assert [e.id for e in first] == [f"HumanEval/{i}" for i in range(5)]
    with pytest.raises(ConfigError, match="dataset.subsample='last' is invalid"):
        validate(config(path="x.jsonl", subsample="last"))
