"""specsweep.data.training: the texts a command line names for fitting a draft, read through the dataset sources
without a dataset config, and their token ids as documents."""

from __future__ import annotations

import datasets
import pytest

from specsweep.data.training import training_documents, training_texts
from specsweep.errors import ConfigError
from tests.data.helpers import ROWS

pytestmark = pytest.mark.usefixtures("private_datasets_cache")


def test_a_plain_text_file_is_one_text(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("def f():\n    pass\n")
    assert training_texts(str(path)) == ["def f():\n    pass\n"]


def test_a_data_file_gives_its_field(jsonl):
    assert training_texts(str(jsonl), field="title") == [row["title"] for row in ROWS]
    with pytest.raises(ConfigError, match=r"^--field='body' is not a column of .*; its columns are id, title, summary, "
                                          r"text\.$"):
        training_texts(str(jsonl), field="body")


def test_errors_name_the_dataset_keys_a_command_line_rewrites(tmp_path):
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(saved))
    assert len(training_texts(str(saved))) == len(ROWS)
    with pytest.raises(ConfigError, match=r"^dataset\.split='validation' is not a split of .*; the splits are: "
                                          r"train\.$"):
        training_texts(str(saved), split="validation")
    with pytest.raises(ConfigError, match=r"^dataset\.path='\./missing\.jsonl' does not exist"):
        training_texts("./missing.jsonl")


def test_every_document_ends_in_eos(tokenizer):
    documents = training_documents(tokenizer, ["word0 of the body", "Title 1"])
    assert len(documents) == 2
    for doc, text in zip(documents, ["word0 of the body", "Title 1"], strict=True):
        assert doc[-1] == tokenizer.eos_token_id and tokenizer.decode(doc[:-1]) == text
