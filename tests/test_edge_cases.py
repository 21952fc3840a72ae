"""EOS, exact max_new_tokens, lookaheads larger than the budget, and bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from specsweep.decoding import Sampling, assisted, autoregressive, prompt_lookup, speculative


@pytest.mark.parametrize("max_new", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("gamma", [1, 2, 7])
def test_max_new_tokens_is_exact(target, near_draft, prompts, max_new, gamma):
    want = autoregressive(target, prompts[1], max_new_tokens=max_new).tokens.tolist()
    for draft in (near_draft, target):  # target as draft: every round wants its bonus token
        out = speculative(target, draft, prompts[1], gamma=gamma, max_new_tokens=max_new)
        assert out.tokens.tolist() == want and len(want) == max_new
        assert out.stats.new_tokens == out.stats.accepted + out.stats.rounds


def eos_after(target, prompt, position: int) -> int:
    """A token id that greedy decoding first emits at `position`, to use as EOS."""
    tokens = autoregressive(target, prompt, max_new_tokens=40).tokens.tolist()
    for i, token in enumerate(tokens):
        if token not in tokens[:i] and i >= position:
            return token
    pytest.fail("no fresh token to use as EOS")


@pytest.mark.parametrize("gamma", [1, 3, 7])
@pytest.mark.parametrize("use_cache", [True, False])
def test_eos_stops_where_autoregressive_stops(target, near_draft, prompts, gamma, use_cache):
    for prompt in prompts[:6]:
        eos = eos_after(target, prompt, 5)
        want = autoregressive(target, prompt, max_new_tokens=40, eos_token_id=eos, use_cache=use_cache)
        assert want.tokens[-1].item() == eos and len(want.tokens) < 40
        # An identical draft accepts the EOS as a draft, mid-round; the near draft mostly meets it on rejection.
        for draft in (target, near_draft):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos,
                              use_cache=use_cache)
            assert out.tokens.tolist() == want.tokens.tolist()
            assert out.stats.accepted <= out.stats.drafted
        # A list of EOS ids works as transformers' does.
        want = autoregressive(target, prompt, max_new_tokens=40, eos_token_id=[95, eos], use_cache=use_cache)
        out = speculative(target, near_draft, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=[95, eos],
                          use_cache=use_cache)
        assert out.tokens.tolist() == want.tokens.tolist()


@pytest.mark.parametrize("gamma", [2, 4])
def test_eos_in_hf_methods_and_their_counts(target, near_draft, prompts, gamma):
    """transformers' methods stop at the same EOS and, counted by the same rules, report the same rounds as our
    engine: an accepted EOS draft is accepted, a rejection replaced by EOS is a rejection."""
    fields = ("new_tokens", "rounds", "drafted", "accepted", "rejections", "accepted_per_position")
    ended_on_draft = []
    for prompt in prompts[:6]:
        eos = eos_after(target, prompt, 4)
        want = autoregressive(target, prompt, max_new_tokens=40, eos_token_id=eos).tokens.tolist()
        # An identical draft proposes the EOS itself; the near draft mostly meets it on a rejection.
        for draft in (target, near_draft):
            ours = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos)
            theirs = assisted(target, copy.deepcopy(draft), prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos)
            assert ours.tokens.tolist() == theirs.tokens.tolist() == want
            if draft is target:  # with the near draft transformers' drafts differ on near-ties (see hf.py)
                assert [getattr(theirs.stats, f) for f in fields] == [getattr(ours.stats, f) for f in fields]
            # Every round adds one token besides its accepted drafts, except a round ending on an accepted EOS.
            ended_on_draft.append(ours.stats.new_tokens == ours.stats.accepted + ours.stats.rounds - 1)
        assert prompt_lookup(target, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos).tokens.tolist() == want
    assert any(ended_on_draft) and not all(ended_on_draft)


def test_prompt_lookup_counts_only_drafts_within_the_budget(target):
    # A prompt that repeats, so every round finds a long match; the budget ends mid-match.
    prompt = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12] * 3])
    for max_new in (1, 2, 3, 6):
        stats = prompt_lookup(target, prompt, gamma=4, max_new_tokens=max_new).stats
        assert stats.new_tokens == max_new == stats.accepted + stats.rounds
        # transformers proposes 4 copied tokens whatever the budget; only those that fit count as drafted.
        assert stats.accepted <= stats.drafted
        if max_new <= 2:
            assert stats.drafted <= max_new - 1


def test_sampled_generation_is_reproducible_with_a_generator(target, near_draft, prompts):
    sampling = Sampling(temperature=0.9, top_p=0.9)
    for method, extra in ((speculative, {"draft": near_draft}), (assisted, {"draft": copy.deepcopy(near_draft)})):
        outs = [method(target, input_ids=prompts[3], gamma=3, max_new_tokens=16, sampling=sampling,
                       generator=torch.Generator().manual_seed(7), **extra).tokens.tolist() for _ in range(2)]
        assert outs[0] == outs[1] and len(outs[0]) == 16


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


def test_no_cache_is_refused_by_transformers_methods(target, near_draft, prompts):
    with pytest.raises(ValueError, match="use_cache=False.*assisted"):
        assisted(target, copy.deepcopy(near_draft), prompts[0], gamma=2, max_new_tokens=4, use_cache=False)
