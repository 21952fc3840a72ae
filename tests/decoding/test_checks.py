"""Bad input (`specsweep.decoding.checks`, and Sampling's own checks) raises one clear sentence before anything
runs."""

from __future__ import annotations

import copy

import pytest
import torch
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from specsweep.decoding import Sampling, assisted, autoregressive, prompt_lookup, speculative


def word_tokenizer(vocab: dict[str, int]) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")))


def assert_one_sentence(error: pytest.ExceptionInfo, *names: str) -> None:
    text = str(error.value)
    assert text.endswith(".") and ". " not in text, text
    for name in names:
        assert name in text, text


BAD_CALLS = [
    ({"gamma": 0}, "gamma=0"),
    ({"gamma": -2}, "gamma=-2"),
    ({"max_new_tokens": 0}, "max_new_tokens=0"),
    ({"input_ids": torch.ones(2, 5, dtype=torch.long)}, "batch size 2"),
]


@pytest.mark.parametrize("method", ["speculative", "assisted", "prompt_lookup"])
@pytest.mark.parametrize("change,message", BAD_CALLS, ids=[m for _, m in BAD_CALLS])
def test_bad_arguments_raise_one_clear_sentence(target, near_draft, prompts, method, change, message):
    call = {
        "speculative": lambda **kw: speculative(target, near_draft, **kw),
        "assisted": lambda **kw: assisted(target, copy.deepcopy(near_draft), **kw),
        "prompt_lookup": lambda **kw: prompt_lookup(target, **kw),
    }[method]
    with pytest.raises(ValueError) as error:
        call(**({"input_ids": prompts[0], "gamma": 3, "max_new_tokens": 8} | change))
    assert_one_sentence(error, message)


@pytest.mark.parametrize("kwargs,message", [
    ({"temperature": -1.0}, "temperature=-1.0"),
    ({"temperature": 1.0, "top_p": 0.0}, "top_p=0.0"),
    ({"temperature": 1.0, "top_p": 1.5}, "top_p=1.5"),
    ({"temperature": 1.0, "top_k": 0}, "top_k=0"),
])
def test_bad_sampling_raises_one_clear_sentence(kwargs, message):
    with pytest.raises(ValueError) as error:
        Sampling(**kwargs)
    assert_one_sentence(error, message)


def test_autoregressive_checks_its_arguments(target, prompts):
    with pytest.raises(ValueError) as error:
        autoregressive(target, prompts[0], max_new_tokens=-1)
    assert_one_sentence(error, "max_new_tokens=-1")


def test_tokenizer_mismatch_names_the_alternative(target, near_draft, prompts):
    a = word_tokenizer({"<unk>": 0, "a": 1, "b": 2})
    b = word_tokenizer({"<unk>": 0, "b": 1, "a": 2})
    for method, draft in ((speculative, near_draft), (assisted, copy.deepcopy(near_draft))):
        with pytest.raises(ValueError, match="tokenizer.*prompt_lookup"):
            method(target, draft, prompts[0], gamma=2, max_new_tokens=4, tokenizers=(a, b))
    # The same vocabulary passes.
    same = word_tokenizer(a.get_vocab())
    speculative(target, near_draft, prompts[0], gamma=2, max_new_tokens=4, tokenizers=(a, same))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_the_stop_rule_refuses_a_bad_threshold(target, near_draft, prompts, bad):
    with pytest.raises(ValueError, match=f"stop_below={bad} is invalid"):
        speculative(target, near_draft, prompts[0], gamma=3, max_new_tokens=4, stop_below=bad)
