"""`specsweep-fit-ngram`: its output loads as a draft with its tokenizer, an existing --out is kept unless --force,
and its mistakes are one sentence and exit status 2."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from specsweep.cli import fit_ngram as cli
from specsweep.models.ngram import DEFAULT_ADD_K, DEFAULT_TOP_K


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    text = TEXT * 3
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([text], trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                         show_progress=False,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(path)
    return path


TEXT = "def add(a, b):\n    return a + b\n\nclass Point:\n    x: int = 0\n    y: int = 0\n" * 20


def test_cli_writes_a_loadable_draft(tmp_path, tokenizer_dir, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text(TEXT)
    out = tmp_path / "drafts" / "bigram"
    cli.main(["--tokenizer", str(tokenizer_dir), "--text", str(text), "--order", "2", "--out", str(out),
              "--top-k", "8"])
    printed = capsys.readouterr().out
    assert "bigram over" in printed and str(out) in printed
    assert not list(out.parent.glob("*.tmp-*"))  # the staging directory was renamed, not left behind
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, config=AutoConfig.from_pretrained(out), dtype=torch.float32,
                                                 attn_implementation="eager")
    assert model.config.vocab_size == len(tokenizer) and model.config.eos_token_id == tokenizer.eos_token_id
    ids = tokenizer("def add(a, b):", return_tensors="pt").input_ids
    assert torch.allclose(model(ids).logits.exp().sum(-1), torch.ones(ids.shape), atol=1e-5)
    assert cli._parser().get_default("add_k") == str(DEFAULT_ADD_K)
    assert cli._parser().get_default("top_k") == str(DEFAULT_TOP_K)

    with pytest.raises(SystemExit) as refused:  # an existing, non-empty --out is never overwritten silently
        cli.main(["--tokenizer", str(tokenizer_dir), "--text", str(text), "--order", "1", "--out", str(out)])
    assert refused.value.code == 2 and "--force" in capsys.readouterr().err
    cli.main(["--tokenizer", str(tokenizer_dir), "--text", str(text), "--order", "1", "--out", str(out), "--force"])
    assert AutoConfig.from_pretrained(out).order == 1


@pytest.mark.parametrize(("option", "value"), [("--order", "3"), ("--top-k", "0"), ("--add-k", "0"),
                                                ("--tokenizer", "./no-such-tokenizer"),
                                                ("--text", "no-such-corpus.txt")])
def test_cli_mistakes_are_one_sentence_and_status_2(tmp_path, tokenizer_dir, capsys, option, value):
    text = tmp_path / "corpus.txt"
    text.write_text(TEXT)
    args = {"--tokenizer": str(tokenizer_dir), "--text": str(text), "--order": "2", "--out": str(tmp_path / "out"),
            option: value}
    with pytest.raises(SystemExit) as exited:
        cli.main([part for pair in args.items() for part in pair])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert len(err.strip().splitlines()) == 1 and option in err and value in err, err
    assert not (tmp_path / "out").exists()
