"""Greedy speculative output must equal greedy autoregressive output, token for token."""

from __future__ import annotations

import copy

import pytest
import torch

from specsweep.decoding import assisted, autoregressive, derive, prompt_lookup, speculative

MAX_NEW = 24


def reference(target, prompt) -> list[int]:
    """transformers' own greedy decoding."""
    out = target.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                          max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW)
    return out[0, prompt.shape[1]:].tolist()


@pytest.fixture(scope="module")
def expected(target, prompts) -> list[list[int]]:
    return [reference(target, prompt) for prompt in prompts]


@pytest.mark.parametrize("use_cache", [True, False])
def test_autoregressive_equals_generate(target, prompts, expected, use_cache):
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert autoregressive(target, prompt, max_new_tokens=MAX_NEW, use_cache=use_cache).tokens.tolist() == tokens


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("gamma", range(1, 8))
def test_speculative_equals_autoregressive(target, near_draft, far_draft, prompts, expected, gamma, use_cache):
    accepted = rejections = 0
    for draft in (near_draft, far_draft):
        for prompt, tokens in zip(prompts, expected, strict=True):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=MAX_NEW, use_cache=use_cache)
            assert out.tokens.tolist() == tokens
            accepted, rejections = accepted + out.stats.accepted, rejections + out.stats.rejections
    # The check has teeth only if both the accept and the reject branch ran.
    assert accepted > 0 and rejections > 0


@pytest.mark.parametrize("gamma", [1, 3, 7])
@pytest.mark.parametrize("use_cache", [True, False])
def test_draft_identical_to_target_accepts_everything(target, prompts, gamma, use_cache):
    # 4 full rounds of gamma + 1 tokens, then a short last round of 2 tokens.
    max_new = 4 * (gamma + 1) + 2
    for prompt in prompts[:4]:
        out = speculative(target, target, prompt, gamma=gamma, max_new_tokens=max_new, use_cache=use_cache)
        stats = out.stats
        assert stats.rounds == 5
        assert stats.rejections == 0
        assert stats.accepted == 4 * gamma + 1
        assert stats.drafted == 4 * gamma + 1  # the last round drafts only what the budget allows
        assert stats.accepted_per_position == [5] + [4] * (gamma - 1)
        assert derive(stats)["alpha"] == 1.0


@pytest.mark.parametrize("gamma", [1, 4])
def test_assisted_equals_autoregressive(target, near_draft, prompts, expected, gamma):
    draft = copy.deepcopy(near_draft)
    for prompt, tokens in zip(prompts, expected, strict=True):
        out = assisted(target, draft, prompt, gamma=gamma, max_new_tokens=MAX_NEW)
        assert out.tokens.tolist() == tokens
        assert out.settings["num_assistant_tokens"] == gamma
        stats = out.stats
        assert stats.new_tokens == stats.accepted + stats.rounds
        assert len(stats.accepted_per_position) == gamma  # never more than gamma drafts in a round


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_assisted_lookahead_is_pinned(target, prompts, gamma):
    """With an identical draft, transformers' default (up to 20 drafts, confidence threshold 0.4) would
    draft far past gamma; pinned, it must draft and accept exactly what our engine does."""
    max_new = 4 * (gamma + 1) + 2
    out = assisted(target, copy.deepcopy(target), prompts[0], gamma=gamma, max_new_tokens=max_new)
    ours = speculative(target, target, prompts[0], gamma=gamma, max_new_tokens=max_new)
    assert out.tokens.tolist() == ours.tokens.tolist()
    fields = ("new_tokens", "rounds", "drafted", "accepted", "rejections", "accepted_per_position")
    assert [getattr(out.stats, f) for f in fields] == [getattr(ours.stats, f) for f in fields]
    assert (out.stats.rounds, out.stats.rejections) == (5, 0)


def test_prompt_lookup_equals_autoregressive(target, prompts, expected):
    drafted = 0
    for prompt, tokens in zip(prompts, expected, strict=True):
        # A prompt that repeats itself gives the n-gram lookup something to copy.
        repeated = torch.cat([prompt, torch.tensor([tokens[:8]]), prompt], dim=1)
        want = reference(target, repeated)
        out = prompt_lookup(target, repeated, gamma=3, max_new_tokens=MAX_NEW)
        assert out.tokens.tolist() == want
        assert out.stats.new_tokens == out.stats.accepted + out.stats.rounds
        drafted += out.stats.drafted
    assert drafted > 0


def test_draft_with_a_larger_embedding(target, prompts, expected):
    """Same tokenizer, padded embeddings (Pythia sizes differ so): the draft's extra ids are never proposed."""
    from tests.helpers import tiny_model

    draft = tiny_model(seed=3, vocab=128)
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert speculative(target, draft, prompt, gamma=3, max_new_tokens=MAX_NEW).tokens.tolist() == tokens


def test_target_with_a_larger_embedding(target, near_draft, prompts, expected):
    """The target padded to 128 rows (new rows are the mean of the others, as transformers pads): q is 0 on
    the ids the draft lacks, so p keeps its whole support and greedy output is unchanged."""
    padded = copy.deepcopy(target)
    padded.resize_token_embeddings(128)
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert autoregressive(padded, prompt, max_new_tokens=MAX_NEW).tokens.tolist() == tokens
        assert speculative(padded, near_draft, prompt, gamma=3, max_new_tokens=MAX_NEW).tokens.tolist() == tokens
    with pytest.raises(ValueError, match="outside the draft's vocabulary"):
        speculative(padded, near_draft, torch.tensor([[5, 100]]), gamma=3, max_new_tokens=4)


@pytest.mark.parametrize("gamma", [1, 3, 7])
def test_a_static_cache_keeps_greedy_output_exact(target, near_draft, far_draft, prompts, expected, gamma):
    """optimization.cache=static: rejections roll back by moving the write position, never by cropping."""
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert autoregressive(target, prompt, max_new_tokens=MAX_NEW, cache="static").tokens.tolist() == tokens
    accepted = rejections = 0
    for draft in (near_draft, far_draft):
        for prompt, tokens in zip(prompts, expected, strict=True):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=MAX_NEW, cache="static")
            assert out.tokens.tolist() == tokens
            assert out.settings["cache"] == {"target": "StaticCache", "draft": "StaticCache"}
            accepted, rejections = accepted + out.stats.accepted, rejections + out.stats.rejections
    assert accepted > 0 and rejections > 0
    same = speculative(target, target, prompts[0], gamma=gamma, max_new_tokens=MAX_NEW, cache="static")
    assert same.stats.rejections == 0 and same.tokens.tolist() == expected[0]  # one cache per role, not shared
